package android.content;
public abstract class Context {
    public static final String ACTIVITY_SERVICE = "activity";
    public static final int MODE_PRIVATE = 0;
    public abstract Object getSystemService(String name);
    public abstract java.io.File getFilesDir();
    public abstract SharedPreferences getSharedPreferences(String name, int mode);
}
