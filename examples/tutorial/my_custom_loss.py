import caffe
import numpy as np


class MyCustomLossLayer(caffe.Layer):
    """
    A custom loss layer that computes (y_pred - y_true)^2 + lambda * ||w||^2
    (a simple L2 loss with L2 regularization on the weights).
    """

    def setup(self, bottom, top):
        """
        Check that the bottom blob has two inputs: predictions and labels.
        """
        if len(bottom) != 2:
            raise Exception("Need two inputs (pred and label) for this layer.")
        # Top should have one output: the loss
        top[0].reshape(1)

    def forward(self, bottom, top):
        """
        Compute the loss by doing a forward pass.
        """
        # Get the data from the bottom blobs
        # bottom[0] is the prediction, bottom[1] is the label
        predictions = bottom[0].data
        labels = bottom[1].data
        # --- Your custom loss logic goes here ---
        # Example: Squared Error Loss
        loss = np.sum((predictions - labels)**2) / predictions.shape[0]
        # Add a simple L2 regularization term on the weights of the previous layer
        # We access the weights of the layer that produced the 'predictions' blob
        # This is just an example; regularization is often handled by the solver.
        # For a real case, you'd need to be more careful about which weights to regularize.
        # params = self.blobs # This doesn't work directly in a loss layer.
        # A better way is to pass the weights as a third bottom if needed.
        # Assign the computed loss to the top blob
        top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom):
        """
        Compute the gradients (dLoss/dX) for backpropagation.
        """
        # Get the gradient from the top layer (will be 1.0 for a scalar loss)
        loss_gradient = top[0].diff
        # Get the data again
        predictions = bottom[0].data
        labels = bottom[1].data
        # --- Your custom gradient logic goes here ---
        # Gradient of (y_pred - y_true)^2 w.r.t. y_pred is 2 * (y_pred - y_true)
        # We divide by batch size to average the gradient
        grad = 2 * (predictions - labels) / predictions.shape[0]
        # Multiply by the gradient from the top (chain rule)
        grad *= loss_gradient
        # Propagate the gradient down to the prediction blob
        # propagate_down[0] should be True if we want to pass gradients to the prediction input
        if propagate_down[0]:
            bottom[0].diff[...] = grad

    def reshape(self, bottom, top):
        """
        This layer's output is a scalar, so no reshape is needed.
        """
        pass
