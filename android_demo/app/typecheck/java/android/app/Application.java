package android.app;
public abstract class Application extends android.content.Context {}
