"""Evaluation: one fitted run scored and drawn (``evaluate``: metrics.json and its figures, ``panels``), exported
as NIfTI (``export``), warped slices and volumes (``warp``) and the loss log's convergence (``convergence``).

Imports the stages before it (data, fitting, methods: checkpoints are loaded through the method table) and
the shared core; ``metrics`` (TRE, folding) and ``truth`` (against the exact motion) are its pure scoring
functions.
"""
