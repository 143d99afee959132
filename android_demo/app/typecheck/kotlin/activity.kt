// androidx.activity's viewModels() (activity-ktx 1.9: ActivityViewModelLazy.kt), reduced to what the app calls.
package androidx.activity

import androidx.lifecycle.ViewModel

inline fun <reified VM : ViewModel> ComponentActivity.viewModels(): Lazy<VM> =
    lazy { VM::class.java.getDeclaredConstructor().newInstance() }
