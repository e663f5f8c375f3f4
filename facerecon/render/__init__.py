"""Image formation: SH lighting, the CPU rasterizer, differentiable interpolation and shading, UV space."""
