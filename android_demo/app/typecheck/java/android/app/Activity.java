package android.app;
public abstract class Activity extends android.content.Context {
    public android.content.Intent getIntent() { return null; }
    protected void onCreate(android.os.Bundle savedInstanceState) {}
    public void setContentView(android.view.View view) {}
    public void finish() {}
}
