package android.content;
public class Intent {
    public String getStringExtra(String name) { return null; }
    public android.os.Bundle getExtras() { return null; }
}
