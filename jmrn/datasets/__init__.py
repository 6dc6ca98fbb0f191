"""Dataset adapters: each turns a dataset's published layout into the common manifest."""
