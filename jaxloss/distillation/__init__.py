"""Knowledge distillation: a student's logits against a teacher's."""
