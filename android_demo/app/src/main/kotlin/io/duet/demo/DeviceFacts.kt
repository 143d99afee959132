/** What the benchmark records say about the device (model, ABI, OS, memory) and the process's PSS, from Android APIs. */
package io.duet.demo

import android.app.ActivityManager
import android.content.Context
import android.os.Build
import android.os.Debug
import io.duet.core.DeviceInfo

object DeviceFacts {
    /** Device model, CPU ABI, Android version and memory (bytes) as ActivityManager reports them now. */
    fun info(context: Context): DeviceInfo {
        val memory = ActivityManager.MemoryInfo()
        (context.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(memory)
        return DeviceInfo("${Build.MANUFACTURER} ${Build.MODEL}", Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown",
            "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})", memory.totalMem, memory.availMem)
    }

    /** This process's proportional set size in MB (Debug.getPss reports kB). */
    fun pssMb(): Double = Debug.getPss() / 1024.0
}
