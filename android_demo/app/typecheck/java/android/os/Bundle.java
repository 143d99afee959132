package android.os;
public final class Bundle {
    public java.util.Set<String> keySet() { return null; }
    @Deprecated public Object get(String key) { return null; }
}
