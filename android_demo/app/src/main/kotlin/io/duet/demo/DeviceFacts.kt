/** What the benchmark records say about the device (minibench's deviceInfo) and the process's PSS, from Android APIs. */
package io.duet.demo

import android.app.ActivityManager
import android.content.Context
import android.os.Build
import android.os.Debug
import io.duet.core.DeviceInfo

object DeviceFacts {
    /** Build.BRAND, Build.MODEL, Build.VERSION.RELEASE and memory (bytes) as ActivityManager reports them now. */
    fun info(context: Context): DeviceInfo {
        val memory = ActivityManager.MemoryInfo()
        (context.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(memory)
        return DeviceInfo.android(Build.BRAND, Build.MODEL, Build.VERSION.RELEASE, memory.totalMem, memory.availMem)
    }

    /** This process's proportional set size in MB (Debug.getPss reports kB). */
    fun pssMb(): Double = Debug.getPss() / 1024.0
}
