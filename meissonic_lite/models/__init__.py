"""The models: VQ image tokenizer (chapter 2), CLIP text encoder (chapter
3) and the Meissonic transformer (chapter 5), with their one file format.

Each model imports only this folder and `utils`; nothing here knows about
training, sampling or the command line. Modules are imported on use.
"""
