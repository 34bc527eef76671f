"""Deep ensembles and iterative self-distillation: ensemble annotation, soft labels, students."""
