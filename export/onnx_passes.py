"""The graph passes zoo runs on each tf2onnx graph, each small and tested alone
(tests/export/test_onnx_passes.py), and :func:`optimize`, their order.

Each pass takes a graph (and, for passes that look into ``Loop`` bodies, the constants of the
enclosing graphs) and returns how many nodes it changed or removed.
"""

from __future__ import annotations


def _subgraphs(node):
    import onnx

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        for g in attr.graphs:
            yield g


def _rename_uses(graph, old, new):
    """Every read of ``old`` in ``graph`` and its subgraphs (outer-scope reads) -> ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for g in _subgraphs(node):
            _rename_uses(g, old, new)
    for out in graph.output:
        if out.name == old:
            # A graph output must be produced in this graph: keep it as a copy.
            import onnx

            graph.node.append(onnx.helper.make_node("Identity", [new], [old]))
            break


def hoist_loop_invariants(graph) -> int:
    """Turns the loop-carried values that a ``Loop`` body passes through unchanged into
    outer-scope reads, in ``graph`` and all its subgraphs. Returns how many were hoisted.

    tf2onnx makes everything a TensorFlow ``while`` captures loop-carried - the weights and
    the encoder memory included - and onnxruntime copies loop-carried values at every
    iteration: for a decoder with a large output projection that copy cost more than the step
    itself. An ONNX ``Loop`` body may read values of the enclosing graph directly.
    """
    hoisted = 0
    for node in graph.node:
        for g in _subgraphs(node):
            hoisted += hoist_loop_invariants(g)
        if node.op_type != "Loop":
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        carried = len(node.input) - 2
        # Body inputs: (iteration, cond, v_1..v_N); outputs: (cond, v_1..v_N, scans...).
        invariant = [k for k in range(carried)
                     if node.input[2 + k] and body.output[1 + k].name == body.input[2 + k].name]
        if not invariant:
            continue
        renames = [(body.input[2 + k].name, node.input[2 + k], node.output[k])
                   for k in invariant]
        for k in sorted(invariant, reverse=True):
            del node.input[2 + k]
            del body.input[2 + k]
            del body.output[1 + k]
            del node.output[k]
        for inner, outer, final in renames:
            _rename_uses(body, inner, outer)
            # The loop's final value of an invariant is its initial value.
            _rename_uses(graph, final, outer)
        hoisted += len(invariant)
    return hoisted


def _reads(graph) -> set:
    """Names read by ``graph``'s nodes and outputs, and by its subgraphs (outer scope)."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for g in _subgraphs(node):
            names |= _reads(g)
    return names


def _readers(graph) -> dict:
    """Name -> how many nodes (subgraphs reading it from outer scope count once each) and
    graph outputs read it."""
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
        for g in _subgraphs(n):
            for i in _reads(g):
                readers[i] = readers.get(i, 0) + 1
    for o in graph.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    return readers


def _prune(graph) -> int:
    """Removes nodes whose outputs nobody reads, in ``graph`` and its subgraphs, then the
    initializers nobody reads (onnxruntime warns about each one it finds)."""
    removed = 0
    for node in graph.node:
        for g in _subgraphs(node):
            removed += _prune(g)
    while True:
        reads = _reads(graph)
        dead = [i for i, n in enumerate(graph.node) if not any(o in reads for o in n.output)]
        if not dead:
            unread = [i for i, t in enumerate(graph.initializer) if t.name not in reads]
            for i in reversed(unread):
                del graph.initializer[i]
            return removed
        for i in reversed(dead):
            del graph.node[i]
        removed += len(dead)


def fold_selects(graph) -> int:
    """Rewrites tf2onnx's arithmetic select back into one ``Where``, in ``graph`` and its
    subgraphs. Returns how many were folded.

    tf2onnx writes ``tf.where(c, x, y)`` as ``Cast(c) * x + y * Cast(Not(c))``: six kernels
    instead of one (for a decoder step at batch 1 the step's cost is mostly per-kernel
    overhead), and not even equal to the select when ``x`` or ``y`` is infinite.
    """
    import onnx

    folded = 0
    for node in graph.node:
        for g in _subgraphs(node):
            folded += fold_selects(g)
    producer = {o: n for n in graph.node for o in n.output}

    def made_by(name, op):
        n = producer.get(name)
        return n if n is not None and n.op_type == op else None

    for add in graph.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        m1, m2 = made_by(add.input[0], "Mul"), made_by(add.input[1], "Mul")
        if m1 is None or m2 is None:
            continue
        pos = made_by(m1.input[0], "Cast")
        neg = made_by(m2.input[1], "Cast")
        neg_not = made_by(neg.input[0], "Not") if neg is not None else None
        if pos is None or neg_not is None or neg_not.input[0] != pos.input[0]:
            continue
        # In place, so the node order stays topological; the casts and muls are pruned below.
        add.CopyFrom(onnx.helper.make_node("Where", [pos.input[0], m1.input[1], m2.input[0]],
                                           list(add.output), name=add.name))
        folded += 1
    if folded:
        _prune(graph)
    return folded


class _Constants(dict):
    """Name -> numpy value, converted from its TensorProto on first read: the passes look at
    a handful of small constants, and converting every weight of a large model up front, per
    graph and per pass, cost more than the passes."""

    def __missing__(self, key):
        raise KeyError(key)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if not hasattr(value, "shape"):
            from onnx import numpy_helper

            value = numpy_helper.to_array(value)
            self[key] = value
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default


def _constants(graph, outer=None) -> dict:
    """Initializer and ``Constant`` node values of ``graph``, over those of enclosing graphs."""
    values = _Constants(outer or {})
    values.update({t.name: t for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    return values


def _descend(graph, outer_constants, run_pass):
    """The start every pass shares: the constants of ``graph`` over those of the enclosing
    graphs, ``run_pass`` applied to each subgraph first (the sum of what it returned), and the
    node producing each name."""
    constants = _constants(graph, outer_constants)
    count = sum(run_pass(g, constants) for node in graph.node for g in _subgraphs(node))
    return constants, count, {o: n for n in graph.node for o in n.output}


_GATHERS = ("Gather", "GatherElements")


def drop_index_wraps(graph, outer_constants=None) -> int:
    """Removes the negative-index wrap in front of ONNX gathers, in ``graph`` and its
    subgraphs. Returns how many were removed.

    Keras's TensorFlow ``take`` and ``take_along_axis`` write ``where(i < 0, i + n, i)``
    before every gather; tf2onnx converts that to about nine kernels (``Shape``, ``Slice``,
    ``Squeeze``, ``Cast``, ``Less``, ``Add``, ``Where``...) per gather. ONNX ``Gather`` and
    ``GatherElements`` take negative indices themselves (range ``[-n, n - 1]``), so the wrap
    is dead weight: in the compacting greedy loop it was a quarter of the body's kernels.
    The wrap is recognised by its structure (the same ``i``, up to casts, in the test and
    both branches; a zero constant), so an unrelated ``Where`` is never touched.
    """
    constants, removed, producer = _descend(graph, outer_constants, drop_index_wraps)

    def base(name):
        n = producer.get(name)
        while n is not None and n.op_type == "Cast":  # int32 <-> int64: the same values
            name, n = n.input[0], producer.get(n.input[0])
        return name

    def same(a, b):
        a, b = base(a), base(b)
        if a == b:
            return True
        na, nb = producer.get(a), producer.get(b)
        # Two copies of one expression (tf2onnx repeats the index's Unsqueeze per use).
        return (na is not None and nb is not None and na.op_type == nb.op_type
                and na.op_type in ("Unsqueeze", "Squeeze", "Reshape")
                and list(na.input[1:]) == list(nb.input[1:]) and na.attribute == nb.attribute
                and same(na.input[0], nb.input[0]))

    def is_zero(name):
        v = constants.get(base(name))
        return v is not None and v.size == 1 and float(v.reshape(())) == 0.0

    for node in graph.node:
        if node.op_type not in _GATHERS:
            continue
        where = producer.get(node.input[1])
        if where is None or where.op_type != "Where":
            continue
        test, wrapped, index = (producer.get(where.input[0]), producer.get(where.input[1]),
                                where.input[2])
        if (test is None or test.op_type != "Less" or not is_zero(test.input[1])
                or not same(test.input[0], index) or wrapped is None
                or wrapped.op_type != "Add"
                or not any(same(i, index) for i in wrapped.input)):
            continue
        node.input[1] = index
        removed += 1
    if removed:
        _prune(graph)
    return removed


class _View:
    """A graph's producers, consumers and constants, for pattern matching."""

    def __init__(self, graph, constants, producer):
        self.constants, self.producer, self.consumers = constants, producer, {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def made(self, name, *ops):
        """The node that makes ``name`` if it is one of ``ops``, else None."""
        n = self.producer.get(name)
        return n if n is not None and n.op_type in ops else None

    def value(self, name):
        """A constant, or a ``Reshape`` of constants (what a hoisted loop weight becomes)."""
        import numpy as np

        if name in self.constants:
            return self.constants[name]
        n = self.made(name, "Reshape")
        if n is None or n.input[0] not in self.constants or n.input[1] not in self.constants:
            return None
        shape = self.constants[n.input[1]].astype(np.int64)
        return None if (shape == 0).any() else self.constants[n.input[0]].reshape(shape)

    def only_use(self, name, op):
        """The one node reading ``name``, if it is an ``op``."""
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None


def _other(n, name):
    return n.input[1] if n.input[0] == name else n.input[0]


def _last_axis_mean(n, rank):
    """``n`` averages over the last of ``rank`` axes, keeping it (as LayerNorm does)."""
    from onnx import helper

    if n.op_type == "GlobalAveragePool":  # tf2onnx's form of it for rank-3 tensors
        return rank == 3
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    got = list(attrs.get("axes", []))
    return attrs.get("keepdims", 1) == 1 and got in ([-1], [rank - 1])


_MEANS = ("ReduceMean", "GlobalAveragePool")


def _variance_chain(v: _View, r):
    """From a ``Reciprocal``: ``(x, mean, var, eps)`` of ``1 / Sqrt(mean((x - m)^2) + eps)``,
    or None."""
    sqrt = v.made(r.input[0], "Sqrt")
    plus = sqrt and v.made(sqrt.input[0], "Add")
    if not plus:
        return None
    var = v.made(plus.input[0], *_MEANS) or v.made(plus.input[1], *_MEANS)
    eps = v.value(_other(plus, var.output[0])) if var else None
    square = var and v.made(var.input[0], "Mul")
    d1 = square and v.made(square.input[0], "Sub")
    d2 = square and v.made(square.input[1], "Sub")
    if eps is None or eps.size != 1 or not d1 or not d2 or list(d1.input) != list(d2.input):
        return None
    x, mean = d1.input[0], v.made(d1.input[1], *_MEANS)
    if not mean or mean.input[0] != x:
        return None
    return x, mean, var, eps


def _match_layer_norm(v: _View, r):
    """``(final Add, x, gamma, beta, eps)`` of the layer norm ending at ``r``'s uses, or
    None."""
    chain = _variance_chain(v, r)
    if chain is None:
        return None
    x, mean, var, eps = chain
    scale = v.only_use(r.output[0], "Mul")
    gamma = v.value(_other(scale, r.output[0])) if scale else None
    if gamma is None:
        return None
    muls = v.consumers.get(scale.output[0], [])
    xs = [n for n in muls if n.op_type == "Mul" and x in n.input]
    neg = [n for n in v.consumers.get(mean.output[0], []) if n.op_type == "Neg"]
    ms = [n for n in muls if n.op_type == "Mul" and neg and neg[0].output[0] in n.input]
    if len(muls) != 2 or len(xs) != 1 or len(ms) != 1:
        return None
    shift = v.only_use(ms[0].output[0], "Add")
    beta = v.value(_other(shift, ms[0].output[0])) if shift else None
    final = v.only_use(xs[0].output[0], "Add")
    # gamma has the input's rank (Keras broadcasts it), so it tells which axis is last.
    if (beta is None or final is None or shift.output[0] not in final.input
            or gamma.ndim < 1 or gamma.size != gamma.shape[-1] or beta.size != gamma.size
            or not _last_axis_mean(mean, gamma.ndim) or not _last_axis_mean(var, gamma.ndim)):
        return None
    return final, x, gamma, beta, float(eps.reshape(()))


def fuse_layer_norms(graph, outer_constants=None) -> int:
    """Fuses Keras's layer normalisation, as tf2onnx writes it, into one ONNX
    ``LayerNormalization`` (opset 17), in ``graph`` and its subgraphs. Returns how many.

    TensorFlow's ``batch_normalization`` form reaches ONNX as thirteen kernels: ``m =
    ReduceMean(x)``, ``v = ReduceMean((x - m)^2)``, ``s = gamma / Sqrt(v + eps)`` and ``y = x *
    s + (beta - m * s)``. A decoder step at batch 1 costs mostly per-kernel overhead, and a
    Transformer step has ten of these. The pattern is matched whole (one last axis, constant
    ``eps``, ``gamma`` and ``beta`` of that axis's size), else left as it is.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    constants, fused, producer = _descend(graph, outer_constants, fuse_layer_norms)
    view = _View(graph, constants, producer)
    fusions = [m for m in (_match_layer_norm(view, r) for r in graph.node
                           if r.op_type == "Reciprocal") if m is not None]
    for final, x, gamma, beta, eps in fusions:
        names = []
        for what, value in (("scale", gamma), ("bias", beta)):
            name = f"{final.output[0]}__ln_{what}"
            graph.initializer.append(numpy_helper.from_array(
                np.asarray(value, np.float32).reshape(-1), name))
            names.append(name)
        # In place, so the node order stays topological; the old chain is pruned below.
        final.CopyFrom(helper.make_node("LayerNormalization", [x, *names], list(final.output),
                                        name=final.name, axis=-1, epsilon=eps))
        fused += 1
    if fusions:
        _prune(graph)
    return fused


_FOLDABLE = ("Reshape", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Identity")


def fold_loop_constants(graph, outer_constants=None) -> int:
    """Computes once, at export, the layout ops of a ``Loop`` body whose inputs are all
    constants, in ``graph``'s subgraphs. Returns how many were folded.

    Once the weights are outer-scope reads (``hoist_loop_invariants``), the ops tf2onnx left
    on them inside the body (an attention projection's kernel reshaped to 2-D, a layer
    norm's ``gamma`` reshaped for broadcasting) run again at every step: onnxruntime folds
    constants only in the main graph. Each is replaced by an initializer of the body.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    def fold(g, constants):
        count = 0
        values = _constants(g, constants)
        for node in g.node:
            for sub in _subgraphs(node):
                count += fold(sub, values)
        done = []
        for node in g.node:
            if node.op_type not in _FOLDABLE or not all(i in values for i in node.input if i):
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            x = values[node.input[0]]
            if node.op_type == "Reshape":
                shape = values[node.input[1]].astype(np.int64)
                if (shape == 0).any():
                    continue  # "copy this dimension": left to onnxruntime
                y = x.reshape(shape)
            elif node.op_type == "Cast":
                y = x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
            elif node.op_type == "Transpose":
                y = np.transpose(x, attrs.get("perm"))
            elif node.op_type in ("Squeeze", "Unsqueeze"):
                axes = attrs.get("axes")
                if axes is None and len(node.input) > 1 and node.input[1]:
                    axes = values[node.input[1]].tolist()
                if node.op_type == "Unsqueeze":
                    y = x
                    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
                        y = np.expand_dims(y, a)
                else:
                    y = np.squeeze(x, axis=None if axes is None else tuple(axes))
            else:
                y = x
            g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(y),
                                                         node.output[0]))
            values[node.output[0]] = y
            done.append(node)
        for node in done:
            g.node.remove(node)
        return count + len(done)

    folded = 0
    constants = _constants(graph, outer_constants)
    for node in graph.node:
        for sub in _subgraphs(node):
            folded += fold(sub, constants)
    if folded:
        _prune(graph)
    return folded


_LAYOUT = ("Reshape", "Squeeze", "Unsqueeze")


def fold_scales_into_weights(graph, outer_constants=None) -> int:
    """Folds a multiplication by a constant scalar into the ``MatMul`` (and bias ``Add``)
    whose constant weights made its input, in ``graph`` and its subgraphs: ``(x @ W + b) * c
    = x @ (W c) + b c``. Returns how many were folded.

    Attention scales its queries by ``1 / sqrt(head_dim)`` after their projection; with the
    weights fixed at export, the scale belongs in them (one kernel fewer per attention and
    step). Layout ops between the product and the multiplication are allowed (the heads'
    reshape); every value on the way must have no other reader.
    """
    import numpy as np
    from onnx import numpy_helper

    constants, folded, producer = _descend(graph, outer_constants, fold_scales_into_weights)
    readers = _readers(graph)

    def scalar(name):
        v = constants.get(name)
        return None if v is None or v.size != 1 else v

    done = []
    for mul in graph.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        which = [k for k in (0, 1) if scalar(mul.input[k]) is not None]
        if len(which) != 1:
            continue
        c = scalar(mul.input[which[0]])
        x = mul.input[1 - which[0]]
        chain = [x]  # the values between the product and the multiplication
        n = producer.get(x)
        while n is not None and n.op_type in _LAYOUT:
            chain.append(n.input[0])
            n = producer.get(n.input[0])
        add = n if n is not None and n.op_type == "Add" else None
        mm = producer.get(add.input[0]) if add is not None else producer.get(chain[-1])
        if mm is None or mm.op_type not in ("MatMul", "Gemm") or mm.op_type == "Gemm" and (
                len(mm.input) > 2):
            continue
        if add is not None:
            if add.input[0] != mm.output[0] or add.input[1] not in constants:
                continue
            chain.append(mm.output[0])
        if mm.input[1] not in constants or any(readers.get(v, 0) != 1 for v in chain):
            continue
        w = constants[mm.input[1]]
        if not np.issubdtype(w.dtype, np.floating) or c.dtype != w.dtype:
            continue
        for node, k in ((mm, 1), (add, 1)):
            if node is None:
                continue
            value = np.asarray(constants[node.input[k]] * c.reshape(()), w.dtype)
            name = f"{node.input[k]}__scaled_{mul.output[0]}"
            graph.initializer.append(numpy_helper.from_array(value, name))
            constants[name] = value
            node.input[k] = name
        done.append(mul)
    for mul in done:
        keep = mul.input[1] if scalar(mul.input[0]) is not None else mul.input[0]
        graph.node.remove(mul)
        _rename_uses(graph, mul.output[0], keep)
    if done:
        _prune(graph)
    return folded + len(done)


def _const_shape(constants, name):
    """A constant target shape without 0 entries and with at most one -1, or None."""
    import numpy as np

    v = constants.get(name)
    if v is None:
        return None
    v = np.asarray(v).astype(np.int64).reshape(-1)
    return None if (v == 0).any() or (v == -1).sum() > 1 else v


def _squeeze_axes(constants, node):
    """The axes of a ``Squeeze``/``Unsqueeze`` (attribute or constant input), or None."""
    import numpy as np
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(node.input) > 1 and node.input[1] in constants:
        return np.asarray(constants[node.input[1]]).reshape(-1).tolist()
    return None


def _merge_unsqueezes(graph, constants, node, inner) -> int:
    """An ``Unsqueeze`` of an ``Unsqueeze`` (non-negative axes) -> one ``Unsqueeze`` of the
    union (the inner axes are positions among the outputs the outer axes do not take)."""
    import numpy as np
    from onnx import helper, numpy_helper

    outer_axes, inner_axes = _squeeze_axes(constants, node), _squeeze_axes(constants, inner)
    if not outer_axes or not inner_axes or min(outer_axes + inner_axes) < 0:
        return 0
    free = [i for i in range(len(outer_axes) + max(inner_axes) + 1) if i not in outer_axes]
    axes = sorted(set(outer_axes) | {free[i] for i in inner_axes})
    name = f"{node.output[0]}__axes"
    graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), name))
    node.CopyFrom(helper.make_node("Unsqueeze", [inner.input[0], name], list(node.output),
                                   name=node.name))
    return 1


def _target_shape(constants, producer, node):
    """The constant shape a ``Reshape`` (or a ``Squeeze`` of a constant ``Reshape``) makes."""
    import numpy as np

    if node.op_type == "Reshape":
        return _const_shape(constants, node.input[1])
    if node.op_type != "Squeeze":
        return None
    inner = producer.get(node.input[0])
    axes = _squeeze_axes(constants, node)
    if inner is None or inner.op_type != "Reshape" or axes is None:
        return None
    base = _const_shape(constants, inner.input[1])
    if base is None:
        return None
    axes = [a % len(base) for a in axes]
    return np.delete(base, axes) if all(base[a] == 1 for a in axes) else None


def collapse_shape_chains(graph, outer_constants=None) -> int:
    """Collapses chains of ``Unsqueeze``, ``Squeeze`` and ``Reshape`` ending in a ``Reshape``
    to a constant shape, or in a ``Squeeze`` of a constant-shape ``Reshape``, into one
    ``Reshape``, in ``graph`` and its subgraphs. Returns how many nodes it saved.

    A layout op moves no data, but each is a kernel launch: Keras's ``Dense`` on a
    ``(batch, 1, dim)`` step input and its head splits reach ONNX as ``Unsqueeze`` ->
    ``Reshape`` -> ``MatMul`` -> ``Reshape`` -> ``Squeeze``, and at batch 1 a decoder step
    costs mostly launches. Only a target shape without 0 entries ("copy this input
    dimension", whose meaning depends on the input) is merged; a ``Squeeze`` folds in when
    its axes are constant and of size 1 in that shape.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    constants, saved, producer = _descend(graph, outer_constants, collapse_shape_chains)
    rewrites = 0
    readers = _readers(graph)
    for node in graph.node:
        inner = producer.get(node.input[0]) if node.input else None
        if (node.op_type == "Unsqueeze" and inner is not None and inner.op_type == "Unsqueeze"
                and readers.get(inner.output[0], 0) == 1
                and len(node.input) > 1 and len(inner.input) > 1):  # opset 13's axes input
            rewrites += _merge_unsqueezes(graph, constants, node, inner)
            continue
        shape = _target_shape(constants, producer, node)
        if shape is None:
            continue
        # Walk up through layout ops: the data is the same whatever shapes it passed through.
        source = node.input[0]
        while source in producer and producer[source].op_type in _LAYOUT:
            source = producer[source].input[0]
        if source == node.input[0] and node.op_type == "Reshape":
            continue
        name = f"{node.output[0]}__shape"
        graph.initializer.append(numpy_helper.from_array(shape.astype(np.int64), name))
        constants[name] = shape
        # In place, so the node order stays topological; the bypassed ops are pruned below.
        node.CopyFrom(helper.make_node("Reshape", [source, name], list(node.output),
                                       name=node.name))
        rewrites += 1
    if rewrites:
        saved += _prune(graph)  # the bypassed layout ops
    return saved


_IMPURE = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
           "Multinomial", "Bernoulli", "Dropout", "Loop", "If", "Scan")


def merge_duplicates(graph, outer_constants=None) -> int:
    """Common-subexpression elimination, in ``graph`` and its subgraphs: of two nodes with
    the same op, attributes and inputs (constant inputs compared by value), the second is
    removed and its readers read the first. Returns how many were removed.

    tf2onnx repeats what Keras computes per layer (each attention's mask broadcast and cast,
    the same for every layer of a step) and per constant (one copy per use).
    """
    constants, removed, _ = _descend(graph, outer_constants, merge_duplicates)
    fed = {i.name for i in graph.input}  # an initializer a caller may override

    def key_of(name):
        if name in constants and name not in fed:
            v = constants[name]
            return ("const", str(v.dtype), v.shape, v.tobytes()) if v.size <= 64 else name
        return name

    seen, renames, dead = {}, {}, []
    for node in graph.node:
        if node.op_type in _IMPURE or any(True for _ in _subgraphs(node)):
            continue
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        key = (node.domain, node.op_type, tuple(key_of(i) for i in node.input),
               tuple(a.SerializeToString() for a in node.attribute), len(node.output))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        for old, new in zip(node.output, first.output):
            renames[old] = new
        dead.append(node)
    for old, new in renames.items():
        _rename_uses(graph, old, new)
    for node in dead:
        graph.node.remove(node)
    if dead:
        _prune(graph)  # constants only the removed nodes read
    return removed + len(dead)


def _bypass(graph, renames) -> int:
    """Points the readers of each ``old`` name at ``new`` (``renames``: old -> new), prunes
    the nodes left unread, and returns how many names were bypassed."""
    for old, new in renames.items():
        _rename_uses(graph, old, new)
    if renames:
        _prune(graph)
    return len(renames)


def fold_double_negations(graph, outer_constants=None) -> int:
    """``Not(Not(x))`` -> ``x``, in ``graph`` and its subgraphs. Returns how many were folded.

    TensorFlow's ``while`` condition ``not all(finished)`` reaches ONNX as ``Not`` of
    ``all``, which tf2onnx writes as ``Not(any(Not(...)))``: two negations in a row at every
    iteration of a decoding loop.
    """
    _, folded, producer = _descend(graph, outer_constants, fold_double_negations)
    outputs = {o.name for o in graph.output}
    renames = {}
    for node in graph.node:
        inner = producer.get(node.input[0]) if node.input else None
        if (node.op_type == "Not" and inner is not None and inner.op_type == "Not"
                and node.output[0] not in outputs):
            renames[node.output[0]] = renames.get(inner.input[0], inner.input[0])
    return folded + _bypass(graph, renames)


def hoist_invariant_nodes(graph) -> int:
    """Moves the nodes of a ``Loop`` body that read nothing the loop changes (only values of
    the enclosing graphs and constants) out of the body, in front of the ``Loop``, in
    ``graph`` and its subgraphs. Returns how many were moved.

    A Keras step recomputes what depends only on the encoder's output (the memory mask's
    broadcast and cast, a beam's tiled mask): once per iteration in a decoding loop, where
    once per call does. Nodes with subgraphs, random ops and nodes writing a body output
    stay; the constants a moved node reads move with it.
    """
    moved = 0
    at = 0
    while at < len(graph.node):
        node = graph.node[at]
        for g in _subgraphs(node):
            moved += hoist_invariant_nodes(g)
        if node.op_type != "Loop":
            at += 1
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        outputs = {o.name for o in body.output}
        stay = set()  # Casts kept in the body (below), by output name
        while True:
            varying = {i.name for i in body.input}
            hoist = []
            for n in body.node:
                if (n.op_type in _IMPURE or n.op_type == "Constant" or n.output[0] in stay
                        or any(True for _ in _subgraphs(n))
                        or any(o in outputs for o in n.output)
                        or any(i in varying for i in n.input if i)):
                    varying.update(n.output)
                else:
                    hoist.append(n)
            # A Cast whose input the body reads too stays: onnxruntime's rule-based
            # optimizer warns at every session start that it cannot rename the outer
            # Cast's output inside the subgraph (the body reads the mask and its cast).
            leaving = {o for n in hoist for o in n.output}
            read = {i for n in body.node if n.output[0] not in leaving for i in n.input}
            more = {n.output[0] for n in hoist if n.op_type == "Cast" and n.input[0] in read}
            if not more:
                break
            stay |= more
        if not hoist:
            at += 1
            continue
        constants = {t.name: t for t in body.initializer}
        for n in hoist:
            for name in n.input:
                if name in constants:  # the body's other readers now read it from outside
                    graph.initializer.append(constants.pop(name))
        kept = [t for t in body.initializer if t.name in constants]
        del body.initializer[:]
        body.initializer.extend(kept)
        for n in hoist:
            body.node.remove(n)
        for k, n in enumerate(hoist):  # in body order: topological in the enclosing graph
            graph.node.insert(at + k, n)
        at += len(hoist) + 1
        moved += len(hoist)
    return moved


def _inferred_types(model) -> dict:
    """Name -> (elem_type, shape with None for unknown dims) for every value ONNX shape
    inference can type, in the main graph and all subgraphs (names are unique)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - no inference, no rewrite: the pass is an optimisation
        return {}
    types = {}

    def walk(g):
        for v in list(g.input) + list(g.value_info) + list(g.output):
            t = v.type.tensor_type
            if t.HasField("shape"):
                types[v.name] = (t.elem_type, [d.dim_value if d.HasField("dim_value") else None
                                               for d in t.shape.dim])
        for t in g.initializer:
            types[t.name] = (t.data_type, list(t.dims))
        for n in g.node:
            for sub in _subgraphs(n):
                walk(sub)

    walk(inferred.graph)
    return types


def drop_identity_ops(model) -> int:
    """Removes the ``Reshape``, ``Slice`` and ``Cast`` nodes that return their input as it
    is, by ONNX shape inference, in the model's graphs. Returns how many were removed.

    Keras's head split of a ``(batch, dim)`` step input, and its ``Dense`` on one, flatten
    a tensor that is already flat: after ``collapse_shape_chains`` a Transformer step keeps
    ``Reshape(x, [-1, dim])`` of a ``(batch, dim)`` ``x`` four times per layer, and greedy
    search slices the one column of its ``(batch, 1)`` top-1. A node is dropped only when
    every dimension but the reshape's one ``-1`` is known and equal (a ``Slice`` only when it
    keeps the whole of every axis it cuts; a ``Cast`` only to the type it has).
    """
    import numpy as np
    from onnx import helper

    types = _inferred_types(model)

    def run(graph, outer_constants):
        constants, removed, _ = _descend(graph, outer_constants, run)
        outputs = {o.name for o in graph.output}
        renames = {}
        for node in graph.node:
            if not node.input or node.output[0] in outputs or node.input[0] not in types:
                continue
            elem, shape = types[node.input[0]]
            if node.op_type == "Cast":
                to = {a.name: helper.get_attribute_value(a) for a in node.attribute}.get("to")
                same = to == elem
            elif node.op_type == "Reshape" and node.input[1] in constants:
                target = np.asarray(constants[node.input[1]]).reshape(-1)
                same = (len(target) == len(shape) and not (target == 0).any()
                        and (target == -1).sum() <= 1
                        and all(t == -1 or d == t for d, t in zip(shape, target)))
            elif (node.op_type == "Slice" and len(node.input) >= 3  # opset 10's inputs
                    and all(i in constants for i in node.input[1:] if i)):
                starts, ends, *rest = [np.asarray(constants[i]).reshape(-1) if i else None
                                       for i in node.input[1:]]
                axes = rest[0] if rest and rest[0] is not None else np.arange(len(starts))
                steps = rest[1] if len(rest) > 1 and rest[1] is not None else np.ones_like(starts)
                same = all(
                    -len(shape) <= a < len(shape) and b == 0 and st == 1
                    and shape[a] is not None and e >= shape[a]
                    for b, e, a, st in zip(starts, ends, axes, steps))
            else:
                continue
            if same:  # readers read the input, or what an identity before it read
                renames[node.output[0]] = renames.get(node.input[0], node.input[0])
        return removed + _bypass(graph, renames)

    return run(model.graph, None) if types else 0


def optimize(model_proto, opset: int) -> None:
    """Runs the passes in their order on a converted model, in place."""
    graph = model_proto.graph
    hoist_loop_invariants(graph)
    fold_loop_constants(graph)
    fold_selects(graph)
    drop_index_wraps(graph)
    if opset >= 17:  # LayerNormalization is an ONNX op from opset 17
        fuse_layer_norms(graph)
    fold_scales_into_weights(graph)
    collapse_shape_chains(graph)
    fold_double_negations(graph)
    # Merged before hoisting too: a body's per-layer copies of one invariant become one node
    # first (merging looks into a body before its enclosing graph).
    merge_duplicates(graph)
    hoist_invariant_nodes(graph)
    drop_identity_ops(model_proto)
    merge_duplicates(graph)
