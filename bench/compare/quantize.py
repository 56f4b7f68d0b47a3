"""Dynamic int8 quantisation of an ONNX graph with python3-onnx alone (ORT's python quantizer is
not installed): the same graph onnxruntime.quantization.quantize_dynamic writes for MatMul with
its defaults (weights QInt8 symmetric per tensor, activations QUInt8 asymmetric per call).

Each MatMul whose second input is a constant 2-D initializer W [K, N] becomes

    A_q, a_scale, a_zp = DynamicQuantizeLinear(A)            (u8, per call)
    Y_i32 = MatMulInteger(A_q, W_q, a_zp, w_zp)              (W_q s8 [K, N], w_zp = 0)
    Y     = Cast(Y_i32, float) * (a_scale * w_scale)

ORT's graph optimiser fuses this pattern into its DynamicQuantizeMatMul / MatMulIntegerToFloat
kernels, as it does for quantize_dynamic's output. MatMuls between two activations (attention
scores, attention x values) and the embedding Gather stay f32, as with quantize_dynamic's
defaults for MatMul.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize_dynamic(src, dst):
    model = onnx.load(src)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    new_nodes, drop, added = [], set(), []
    n_q = 0
    for node in g.node:
        w_name = node.input[1] if node.op_type == "MatMul" else None
        if w_name not in inits or len(inits[w_name].dims) != 2:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
        amax = float(np.abs(w).max())
        w_scale = np.float32(amax / 127.0 if amax > 0 else 1.0)
        w_q = np.clip(np.rint(w / w_scale), -127, 127).astype(np.int8)
        base = f"{w_name}_dq{n_q}"
        n_q += 1
        added += [numpy_helper.from_array(w_q, f"{base}_quantized"),
                  numpy_helper.from_array(np.array(w_scale, np.float32), f"{base}_scale"),
                  numpy_helper.from_array(np.array(0, np.int8), f"{base}_zero_point")]
        drop.add(w_name)
        a = node.input[0]
        y = node.output[0]
        new_nodes += [
            helper.make_node("DynamicQuantizeLinear", [a],
                             [f"{base}_a_q", f"{base}_a_scale", f"{base}_a_zp"]),
            helper.make_node("MatMulInteger",
                             [f"{base}_a_q", f"{base}_quantized", f"{base}_a_zp", f"{base}_zero_point"],
                             [f"{base}_i32"]),
            helper.make_node("Cast", [f"{base}_i32"], [f"{base}_f32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{base}_a_scale", f"{base}_scale"], [f"{base}_s"]),
            helper.make_node("Mul", [f"{base}_f32", f"{base}_s"], [y]),
        ]
    # A weight shared with a non-MatMul consumer stays.
    still_used = {i for n in new_nodes for i in n.input}
    keep = [i for i in g.initializer if i.name not in drop or i.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep + added)
    del g.node[:]
    g.node.extend(new_nodes)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return n_q


if __name__ == "__main__":
    print(quantize_dynamic(sys.argv[1], sys.argv[2]), "MatMuls quantised")
