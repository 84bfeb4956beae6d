"""One definition per IR op kind: the op-kind registry.

Every kind of IR op (``dense``, ``conv``, ``pool``, ``gap``, ``eltwise``, ``act``, ``affine``, ``concat``, ``pad``,
``reshape``, ``identity``, ``lrn``, ``move``, ...) is one `OpKind` subclass in its own module of this package,
registered with `register`. Everything the toolchain needs to know about a kind is on that object, and every stage dispatches
through `kind_of(op)` instead of switching on ``op.kind``:

================  =====================================================================  ========================
hook              contract                                                               called by
================  =====================================================================  ========================
``name``          the IR kind string (``Op.kind``)                                       `kind_of`
``arity``         (min, max) inputs; every op has exactly one output                     `ir.verify`
``crossbar``      weights live on crossbars: a `LayerPrecision`, ``weight`` (K, N)       `Op.is_crossbar`
``device``        ``"crossbar"``, ``"vector"`` (runs on a core of its own),              placement, plan,
                  ``"view"`` (no core: its output buffer holds its inputs) or            generate
                  ``"none"`` (canonicalization must remove it; `device_error` says why)
``fuses_act``     a following standalone activation may fold into it                     `FuseActivation`
``check``         shape/attribute/param invariants -> a problem string or None           `ir.verify`
``float_eval``    float semantics before the fused activation, on internal-layout        `reference.run_op`
                  float arrays ((B, H, W, C) for (C, H, W) tensors, else (B, F))
``int_eval``      integer semantics (the functional model, docs/semantics.md) before     `functional`
                  the fused activation -> (integers, their fraction bits)
``preserves_fmt`` its input may be stored in its output's format (max pool, concat)      `assign_formats`
``window_fill``   it reads input 0 through windows: the border fill of that buffer       `codegen.Storage`
``pixel_blocks``  the order in which it writes its output pixels                         `codegen.transfers`
``const_words``   words of constants it keeps in tile memory                             `codegen.plan`
``vector_regions`` operand regions of the data registers a vector op needs               `codegen.plan`
``emit``          its instructions (`codegen.Context`)                                   `codegen.generate`
================  =====================================================================  ========================

The fused activation (attr ``act``) is generic: the float reference applies `reference.apply_act`, the
functional model `functional.activate`, codegen `epilogue.activation` after the kind's own work.

A vector kind's ``emit`` usually calls ``codegen.vector.emit_vector(ctx, op, family)``: ``family(ctx, core, op, a,
b, n, c0, oh, ow, out_ptr)`` emits channels [c0, c0 + n) with ``vector_regions`` operand regions of ``b - a``
registers each, at ``a``, ``b``, ``2 b - a``, ..., typically one ``codegen.loops.pixel_loop`` whose body ends in
``codegen.epilogue.finish`` (requantize, store, send); `lrn` and `move` are examples. Its ``int_eval`` must
compute exactly what those instructions compute (tests compare the runtime with the functional model as
integers).

Adding an op kind is one module here (subclass `OpKind`, decorate with `@register`, list the module in
`KIND_MODULES`) plus its frontend converter and tests. The kind modules are imported on the first `kind_of`
call, so `compiler.ir` can use the registry without an import cycle.
"""

from .base import KIND_MODULES, IntContext, OpKind, kind_of, kinds, register
from .crossbar import CrossbarKind, crossbar_kind

__all__ = ["KIND_MODULES", "CrossbarKind", "IntContext", "OpKind", "crossbar_kind", "kind_of", "kinds", "register"]
