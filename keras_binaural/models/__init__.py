"""Models: encoders (VGGish, ResNet-18), the localizer, the diffusion upmixer and CLUP."""

from keras_binaural.models.audio_encoders import LogMelCNN
from keras_binaural.models.clup import CLUP
from keras_binaural.models.denoiser import (
    DiffusionStepEmbedding,
    ResidualLayer,
    WaveNetDenoiser,
    compiled_denoise_fn,
    upsample_frames,
)
from keras_binaural.models.guidance import GuidanceNetwork
from keras_binaural.models.hub import HubVGGishEmbedder, vggish_embedder
from keras_binaural.models.localization import LocalizationModel
from keras_binaural.models.localization_heads import BaselineHead, OSAHead, SSMHead
from keras_binaural.models.resnet import (
    BasicBlock,
    ResNet18,
    load_torchvision_resnet18_weights,
    normalize_imagenet,
)
from keras_binaural.models.upmixer import Upmixer
from keras_binaural.models.vggish import VGGish, VGGishEmbedder, load_vggish_checkpoint

__all__ = [
    "CLUP",
    "BaselineHead",
    "BasicBlock",
    "DiffusionStepEmbedding",
    "GuidanceNetwork",
    "HubVGGishEmbedder",
    "LocalizationModel",
    "LogMelCNN",
    "OSAHead",
    "ResNet18",
    "ResidualLayer",
    "SSMHead",
    "Upmixer",
    "VGGish",
    "VGGishEmbedder",
    "WaveNetDenoiser",
    "compiled_denoise_fn",
    "load_torchvision_resnet18_weights",
    "load_vggish_checkpoint",
    "normalize_imagenet",
    "upsample_frames",
    "vggish_embedder",
]
