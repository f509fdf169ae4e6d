"""Alama's deployable services and the shared library they all build on.

A service process started with ALAMA_WITHOUT_TRAINING_PACKAGES=1 (the supervisor does so for
every service but the retrainer) imports only what its image installs: the images leave out
PyTorch and what it pulls in (see any service's Dockerfile), but locally the services share
the project's environment, where Feast's import finds torch and spends about 7 CPU seconds
loading it for transformations Alama never uses; scoring and the feature store start that much
sooner, and a service that came to depend on torch fails here as it would in its image.
"""

from services.common.packages import keep_training_packages_out_from_environment

keep_training_packages_out_from_environment()
