"""EMENet: multitask facial emotion recognition with uncertainty (Deng, Wu, Shi, ICCVW 2021)."""
from emenet.models import (EMENet, EMENetConfig, EMENetVA, EMENetVAConfig, create_model, list_models, load_checkpoint,
                           save_checkpoint)
from emenet.tasks import AU_NAMES, EXPR_NAMES, TASKS

__version__ = "0.1.0"
__all__ = ["AU_NAMES", "EMENet", "EMENetConfig", "EMENetVA", "EMENetVAConfig", "EXPR_NAMES", "TASKS", "create_model",
           "list_models", "load_checkpoint", "save_checkpoint"]
