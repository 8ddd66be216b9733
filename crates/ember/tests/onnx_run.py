"""Runs an ONNX model with ONNX Runtime for the export tests.

usage: onnx_run.py MODEL.onnx INPUT.f32 OUTPUT.f32 N,C,H,W

Checks the model with onnx.checker (full check, shape inference included) when the onnx
package is there, runs it on the little-endian f32 input of shape N,C,H,W, writes the
logits as little-endian f32 and prints one JSON line: the output shape, the opset and the
metadata_props.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model, inp, out, shape = sys.argv[1:5]
shape = [int(d) for d in shape.split(",")]
checked = False
try:
    import onnx
except ImportError:
    onnx = None
if onnx is not None:
    m = onnx.load(model)
    onnx.checker.check_model(m, full_check=True)
    checked = True
x = np.fromfile(inp, dtype="<f4").reshape(shape)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
(y,) = sess.run(["logits"], {"input": x})
y.astype("<f4").tofile(out)
meta = sess.get_modelmeta()
print(json.dumps({
    "shape": list(y.shape),
    "checked": checked,
    "metadata": dict(meta.custom_metadata_map),
    "inputs": [i.name for i in sess.get_inputs()],
}))
