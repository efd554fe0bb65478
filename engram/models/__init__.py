"""Model loading, Engram injection and cached generation."""

from engram.models.loading import ModelUnavailableError, load_model, model_num_layers, model_shape

__all__ = ["ModelUnavailableError", "load_model", "model_num_layers", "model_shape"]
