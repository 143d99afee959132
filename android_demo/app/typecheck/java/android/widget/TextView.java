package android.widget;
public class TextView extends android.view.View {
    public TextView(android.content.Context context) { super(context); }
    public void setText(CharSequence text) {}
    public CharSequence getText() { return null; }
    public void setTextIsSelectable(boolean selectable) {}
    public void setTypeface(android.graphics.Typeface tf) {}
    public android.graphics.Typeface getTypeface() { return null; }
    public void setSingleLine() {}
    public void setInputType(int type) {}
    public int getInputType() { return 0; }
}
