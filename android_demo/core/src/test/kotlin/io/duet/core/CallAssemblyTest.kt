/** CallAssembly: arguments in call_signature order, named by the target's input_names, with shape checks. */
package io.duet.core

import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.refused
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class CallAssemblyTest {
    private val manifest = Fixtures.manifest()
    private val slots = SlotBlob.decode(goodBlob(), manifest)
    private val inputs = mapOf(
        "mask" to TensorData.floats(listOf(1, 4), floatArrayOf(1f, 1f, 0f, 0f)),
        "items" to TensorData.ints(listOf(1, 4), intArrayOf(5, 6, 0, 0)))

    @Test
    fun inputsThenSlotsInCallSignatureOrder() {
        val args = CallAssembly.arguments(manifest, inputs, slots)
        assertEquals(listOf("items", "mask", "head.w", "head.b"), args.map { it.name })
        assertEquals(args.map { it.name }, args.map { it.runtimeName })
        assertArrayEquals(intArrayOf(5, 6, 0, 0), args[0].data.intValues())
        assertArrayEquals(Fixtures.W, args[2].data.floatValues(), 0f)
        assertEquals(listOf(2, 3), args[2].data.shape)
    }

    @Test
    fun targetInputNamesNameTheArguments() {
        val args = CallAssembly.arguments(manifest, inputs, slots, manifest.target("tflite"))
        assertEquals(listOf("args_0", "args_1", "args_2", "args_3"), args.map { it.runtimeName })
        assertEquals(listOf("items", "mask", "head.w", "head.b"), args.map { it.name })
    }

    @Test
    fun missingOrMisshapenInputs() {
        refused(Reason.SLOT_SHAPE, "missing [mask]") { CallAssembly.arguments(manifest, inputs - "mask", slots) }
        val wrong = inputs + ("items" to TensorData.ints(listOf(4), intArrayOf(1, 2, 3, 4)))
        refused(Reason.SLOT_SHAPE, "'items' should be int32 of shape [1, 4], got int32 of shape [4]") {
            CallAssembly.arguments(manifest, wrong, slots)
        }
        val wrongType = inputs + ("items" to TensorData.floats(listOf(1, 4), FloatArray(4)))
        refused(Reason.SLOT_SHAPE, "got float32") { CallAssembly.arguments(manifest, wrongType, slots) }
        refused(Reason.SLOT_SHAPE, "holds 4 values, got 3") { TensorData.ints(listOf(1, 4), intArrayOf(1, 2, 3)) }
    }
}
