"""The trainer machinery shared by every distillation trainer in trainers/."""
