"""Borrowed arrays: skip numba's atomic reference counting inside a kernel loop.

Every array numba passes to a jitted callee, or slices (``cost[t]``), costs an atomic increment and decrement
of its reference count. In the sequential loop that is a few hundred atomic operations per request (the kernels
take ~25 arrays each), which was most of its time (profiled with perf: ``NRT_decref``). :func:`borrow` returns
the same array without its reference-count handle (``meminfo = NULL``), for which numba's incref/decref return
at once. Use it only on arrays that outlive every use of the borrowed view: a kernel's own arguments, inside
that kernel.
"""

from __future__ import annotations

from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def borrow(typingctx, arr):
    """The array ``arr`` with a NULL meminfo: same data, shape and strides; not reference counted."""

    def codegen(context, builder, sig, args):
        ary = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        return ary._getvalue()

    return arr(arr), codegen
