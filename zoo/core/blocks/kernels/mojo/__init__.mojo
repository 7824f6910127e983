# zoo's CPU decode kernels, loaded into MAX graphs as custom ops.
