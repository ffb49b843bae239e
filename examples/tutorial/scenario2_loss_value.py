"""Tutorial scenario 2: accessing the loss value, written as the tutorial writes it.

    caffe-compat run examples/tutorial/scenario2_loss_value.py [--out DIR]

The code below is the tutorial's (``import caffe`` and all), run unchanged on
caffe_compat by ``caffe-compat run``. What was added: it trains a little first
so that ``my_model.caffemodel`` exists, and the image size is 8x8, not 224x224.
Tutorial slips: pycaffe has no ``caffe.Solver(...)`` (it is ``caffe.get_solver``
or ``caffe.SGDSolver``); caffe_compat accepts both spellings. Without a GPU,
``caffe.set_mode_gpu()`` warns and stays on the CPU.
"""

import argparse
import os
import sys

try:
    import caffe
except ImportError:
    sys.exit("'import caffe' found nothing; run this with:  caffe-compat run " + __file__)
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default=os.path.join(HERE, "..", "output", "tutorial"),
                help="where my_model.caffemodel goes")
ap.add_argument("--iters", type=int, default=60, help="training iterations before the test part")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
os.chdir(HERE)  # the prototxts name each other by relative paths
MODEL = os.path.join(os.path.abspath(args.out), "my_model.caffemodel")

# --- a. During Training (with a Solver) -------------------------------------
# Assume you have your solver.prototxt and model.prototxt
solver = caffe.Solver('solver.prototxt')
# Run one iteration of training
solver.step(1)
# The loss value is now in the 'loss' blob of the network
# The 'loss' blob name corresponds to the 'top' name in your loss layer
loss_value = solver.net.blobs['loss'].data
print(f"Loss after one step: {loss_value}")
first_loss = loss_value.item()

solver.step(args.iters - 1)  # (added) train on, then keep the weights
print(f"Loss after {args.iters} steps: {solver.net.blobs['loss'].data.item():.4f} (first: {first_loss:.4f})")
solver.net.save(MODEL)

# --- b. During Testing / Forward Pass ---------------------------------------
# Set the mode to CPU or GPU
caffe.set_device(0)
caffe.set_mode_gpu()
# Load the trained model and its weights
# 'deploy.prototxt' is the model file without the loss/data layers
# 'my_model.caffemodel' is the trained weights
net = caffe.Net('deploy.prototxt', MODEL, caffe.TEST)
# To calculate the loss, you need the original model file that has the loss layer
# Let's load that into a separate 'loss_net'
loss_net = caffe.Net('train_val.prototxt', MODEL, caffe.TEST)
# Prepare a dummy input batch and labels
# The shape must match the 'data' layer's dimensions
# For example, for a batch of 10 images of size 8x8 with 3 channels
dummy_input = np.random.randn(10, 3, 8, 8).astype(np.float32)
dummy_labels = np.random.randint(0, 10, 10).astype(np.int32)  # Assuming 10 classes
# Assign the data and labels to the network's blobs
loss_net.blobs['data'].data[...] = dummy_input
loss_net.blobs['label'].data[...] = dummy_labels
# Perform a forward pass to calculate the loss
loss_net.forward()
# The loss is now in the 'loss' blob
loss_value = loss_net.blobs['loss'].data
print(f"Test Loss on dummy data: {loss_value}")
caffe.set_mode_cpu()
