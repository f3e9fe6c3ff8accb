"""daily-python's API offline, in parts by job; ``sandbox.client`` puts them together under
daily's names (``Daily``, ``CallClient``, ``CustomAudioSource``...)."""
