"""Models: encoders (VGGish, ResNet-18), the localizer, the diffusion upmixer and CLUP."""

from keras_binaural.models.hub import HubVGGishEmbedder, vggish_embedder
from keras_binaural.models.resnet import (
    BasicBlock,
    ResNet18,
    load_torchvision_resnet18_weights,
    normalize_imagenet,
)
from keras_binaural.models.vggish import VGGish, VGGishEmbedder, load_vggish_checkpoint
