"""A particledyn plugin: the kernel ``example_spread`` and the observer ``example_radius``.

Importing this module registers both (the ``particledyn.plugins`` entry point in
``pyproject.toml`` makes particledyn import it); a scenario then names them::

    [kernel]
    kind = "example_spread"
    radius2 = 4.0

    [[observers]]
    type = "example_radius"

The observer type's ``summarize`` and ``figure`` hooks (:mod:`.verdict`) put the radius in the
run's verdict and draw it against the step beside particledyn's own figures.
"""

from particledyn.scenario import KernelType, Key, ObserverType, register_kernel, register_observer
from particledyn.scenario.checks import Float, Int

from .spread import RadiusObserver, spread_kernel
from .verdict import figure_radius, summarize_radius

__version__ = "0.1.0"

register_kernel(
    KernelType(
        name="example_spread",
        summary="(example plugin) DeepSets kernel driving the cloud's mean square radius to radius2",
        options=(
            Key("kernel.dim", Int(1, 64), "Particle dimension D.", 2),
            Key("kernel.radius2", Float(0.0, lo_open=True), "Target mean square distance to the mean.", 4.0),
        ),
        build=lambda options, dataset: spread_kernel(options["dim"], options["radius2"]),
    )
)

register_observer(
    ObserverType(
        name="example_radius",
        summary="(example plugin) p-mean distance of the particles to their mean",
        options=(Key("p", Float(0.0, lo_open=True), "Order p of the mean.", 2.0),),
        build=lambda options, context: RadiusObserver(options["every"], p=options["p"]),
        target="particledyn_example_plugin.spread:RadiusObserver",
        summarize=summarize_radius,
        figure=figure_radius,
    )
)
