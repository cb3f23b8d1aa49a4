"""The training step every model of this package shares (the Keras guide's custom `train_step`)."""

import keras
import tensorflow as tf


class LossTermsModel(keras.Model):
    """A model that `model.fit` trains on a loss made of named terms.

    Subclasses implement `compute_losses(data, training) -> dict` (the scalar "loss" and each
    term) and call `track_losses(term_names)` in their constructor: a `Mean` tracker per term,
    reported by `fit` and `evaluate` under the term's name.
    """

    def track_losses(self, term_names) -> None:
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = {name: keras.metrics.Mean(name=name) for name in term_names}

    def compute_losses(self, data, training=False) -> dict:
        raise NotImplementedError

    def _update_metrics(self, results):
        self.loss_tracker.update_state(results["loss"])
        for name, tracker in self.term_trackers.items():
            tracker.update_state(results[name])
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            results = self.compute_losses(data, training=True)
        trainable_variables = self.trainable_variables
        gradients = tape.gradient(results["loss"], trainable_variables)
        self.optimizer.apply(gradients, trainable_variables)
        return self._update_metrics(results)

    def test_step(self, data):
        return self._update_metrics(self.compute_losses(data, training=False))

    @property
    def metrics(self):
        return [self.loss_tracker, *self.term_trackers.values()]
