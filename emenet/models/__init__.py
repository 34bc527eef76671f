from emenet.models.checkpoint import load_checkpoint, save_checkpoint
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.models.emenet_va import EMENetVA, EMENetVAConfig
from emenet.models.marblenet import MarbleNet, load_nemo_marblenet
from emenet.models.mobilefacenet import MobileFaceNet
from emenet.models.registry import create_model, list_models, register_model
from emenet.run_layout import checkpoint_path

__all__ = ["EMENet", "EMENetConfig", "EMENetVA", "EMENetVAConfig", "MarbleNet", "MobileFaceNet", "checkpoint_path",
           "create_model", "list_models", "load_checkpoint", "load_nemo_marblenet", "register_model", "save_checkpoint"]
