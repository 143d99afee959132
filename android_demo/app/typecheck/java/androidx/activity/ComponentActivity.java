package androidx.activity;
public class ComponentActivity extends android.app.Activity implements androidx.lifecycle.LifecycleOwner {
    public android.content.Context getApplicationContext() { return null; }
    @Override public android.content.SharedPreferences getSharedPreferences(String name, int mode) { return null; }
    @Override public Object getSystemService(String name) { return null; }
    @Override public java.io.File getFilesDir() { return null; }
}
