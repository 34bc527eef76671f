from emenet.models.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.models.mobilefacenet import MobileFaceNet
from emenet.models.registry import create_model, list_models, register_model

__all__ = ["EMENet", "EMENetConfig", "MobileFaceNet", "checkpoint_path", "create_model", "list_models",
           "load_checkpoint", "register_model", "save_checkpoint"]
