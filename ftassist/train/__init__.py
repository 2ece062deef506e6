"""The Train station: job spec, events contract, the local worker, the OpenAI backend, export.

Import submodules directly (`from ftassist.train.spec import JobSpec`); this package keeps
module-level imports light so the app starts fast.
"""
