"""Training with Lightning: the module, AdamW and its schedule, the Trainer builder, loggers,
callbacks, atomic checkpoint writes, and the check of a checkpoint's training state."""
