"""The parameter lists of the penalty benchmark (issue 3): shapes only, arrays are made by the cases.

RESNET50_PARAMETERS is torchvision's ResNet-50 (``torchvision.models.resnet50()``) written out by hand,
in ``named_parameters()`` order: the 7x7 stem convolution and its batch norm, then four stages of
bottleneck blocks (3, 4, 6 and 3 blocks of width 64, 128, 256 and 512; each block a 1x1, a 3x3 and a 1x1
convolution expanding to 4x the width, each followed by a batch norm with a weight and a bias; the first
block of each stage adds a 1x1 downsample convolution and its batch norm), and the 1000-way classifier.
161 arrays, 25,557,032 values. torchvision is not imported: the list is the architecture itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RESNET50_PARAMETERS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("conv1.weight", (64, 3, 7, 7)),
    ("bn1.weight", (64,)),
    ("bn1.bias", (64,)),
    ("layer1.0.conv1.weight", (64, 64, 1, 1)),
    ("layer1.0.bn1.weight", (64,)),
    ("layer1.0.bn1.bias", (64,)),
    ("layer1.0.conv2.weight", (64, 64, 3, 3)),
    ("layer1.0.bn2.weight", (64,)),
    ("layer1.0.bn2.bias", (64,)),
    ("layer1.0.conv3.weight", (256, 64, 1, 1)),
    ("layer1.0.bn3.weight", (256,)),
    ("layer1.0.bn3.bias", (256,)),
    ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("layer1.0.downsample.1.weight", (256,)),
    ("layer1.0.downsample.1.bias", (256,)),
    ("layer1.1.conv1.weight", (64, 256, 1, 1)),
    ("layer1.1.bn1.weight", (64,)),
    ("layer1.1.bn1.bias", (64,)),
    ("layer1.1.conv2.weight", (64, 64, 3, 3)),
    ("layer1.1.bn2.weight", (64,)),
    ("layer1.1.bn2.bias", (64,)),
    ("layer1.1.conv3.weight", (256, 64, 1, 1)),
    ("layer1.1.bn3.weight", (256,)),
    ("layer1.1.bn3.bias", (256,)),
    ("layer1.2.conv1.weight", (64, 256, 1, 1)),
    ("layer1.2.bn1.weight", (64,)),
    ("layer1.2.bn1.bias", (64,)),
    ("layer1.2.conv2.weight", (64, 64, 3, 3)),
    ("layer1.2.bn2.weight", (64,)),
    ("layer1.2.bn2.bias", (64,)),
    ("layer1.2.conv3.weight", (256, 64, 1, 1)),
    ("layer1.2.bn3.weight", (256,)),
    ("layer1.2.bn3.bias", (256,)),
    ("layer2.0.conv1.weight", (128, 256, 1, 1)),
    ("layer2.0.bn1.weight", (128,)),
    ("layer2.0.bn1.bias", (128,)),
    ("layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("layer2.0.bn2.weight", (128,)),
    ("layer2.0.bn2.bias", (128,)),
    ("layer2.0.conv3.weight", (512, 128, 1, 1)),
    ("layer2.0.bn3.weight", (512,)),
    ("layer2.0.bn3.bias", (512,)),
    ("layer2.0.downsample.0.weight", (512, 256, 1, 1)),
    ("layer2.0.downsample.1.weight", (512,)),
    ("layer2.0.downsample.1.bias", (512,)),
    ("layer2.1.conv1.weight", (128, 512, 1, 1)),
    ("layer2.1.bn1.weight", (128,)),
    ("layer2.1.bn1.bias", (128,)),
    ("layer2.1.conv2.weight", (128, 128, 3, 3)),
    ("layer2.1.bn2.weight", (128,)),
    ("layer2.1.bn2.bias", (128,)),
    ("layer2.1.conv3.weight", (512, 128, 1, 1)),
    ("layer2.1.bn3.weight", (512,)),
    ("layer2.1.bn3.bias", (512,)),
    ("layer2.2.conv1.weight", (128, 512, 1, 1)),
    ("layer2.2.bn1.weight", (128,)),
    ("layer2.2.bn1.bias", (128,)),
    ("layer2.2.conv2.weight", (128, 128, 3, 3)),
    ("layer2.2.bn2.weight", (128,)),
    ("layer2.2.bn2.bias", (128,)),
    ("layer2.2.conv3.weight", (512, 128, 1, 1)),
    ("layer2.2.bn3.weight", (512,)),
    ("layer2.2.bn3.bias", (512,)),
    ("layer2.3.conv1.weight", (128, 512, 1, 1)),
    ("layer2.3.bn1.weight", (128,)),
    ("layer2.3.bn1.bias", (128,)),
    ("layer2.3.conv2.weight", (128, 128, 3, 3)),
    ("layer2.3.bn2.weight", (128,)),
    ("layer2.3.bn2.bias", (128,)),
    ("layer2.3.conv3.weight", (512, 128, 1, 1)),
    ("layer2.3.bn3.weight", (512,)),
    ("layer2.3.bn3.bias", (512,)),
    ("layer3.0.conv1.weight", (256, 512, 1, 1)),
    ("layer3.0.bn1.weight", (256,)),
    ("layer3.0.bn1.bias", (256,)),
    ("layer3.0.conv2.weight", (256, 256, 3, 3)),
    ("layer3.0.bn2.weight", (256,)),
    ("layer3.0.bn2.bias", (256,)),
    ("layer3.0.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.0.bn3.weight", (1024,)),
    ("layer3.0.bn3.bias", (1024,)),
    ("layer3.0.downsample.0.weight", (1024, 512, 1, 1)),
    ("layer3.0.downsample.1.weight", (1024,)),
    ("layer3.0.downsample.1.bias", (1024,)),
    ("layer3.1.conv1.weight", (256, 1024, 1, 1)),
    ("layer3.1.bn1.weight", (256,)),
    ("layer3.1.bn1.bias", (256,)),
    ("layer3.1.conv2.weight", (256, 256, 3, 3)),
    ("layer3.1.bn2.weight", (256,)),
    ("layer3.1.bn2.bias", (256,)),
    ("layer3.1.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.1.bn3.weight", (1024,)),
    ("layer3.1.bn3.bias", (1024,)),
    ("layer3.2.conv1.weight", (256, 1024, 1, 1)),
    ("layer3.2.bn1.weight", (256,)),
    ("layer3.2.bn1.bias", (256,)),
    ("layer3.2.conv2.weight", (256, 256, 3, 3)),
    ("layer3.2.bn2.weight", (256,)),
    ("layer3.2.bn2.bias", (256,)),
    ("layer3.2.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.2.bn3.weight", (1024,)),
    ("layer3.2.bn3.bias", (1024,)),
    ("layer3.3.conv1.weight", (256, 1024, 1, 1)),
    ("layer3.3.bn1.weight", (256,)),
    ("layer3.3.bn1.bias", (256,)),
    ("layer3.3.conv2.weight", (256, 256, 3, 3)),
    ("layer3.3.bn2.weight", (256,)),
    ("layer3.3.bn2.bias", (256,)),
    ("layer3.3.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.3.bn3.weight", (1024,)),
    ("layer3.3.bn3.bias", (1024,)),
    ("layer3.4.conv1.weight", (256, 1024, 1, 1)),
    ("layer3.4.bn1.weight", (256,)),
    ("layer3.4.bn1.bias", (256,)),
    ("layer3.4.conv2.weight", (256, 256, 3, 3)),
    ("layer3.4.bn2.weight", (256,)),
    ("layer3.4.bn2.bias", (256,)),
    ("layer3.4.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.4.bn3.weight", (1024,)),
    ("layer3.4.bn3.bias", (1024,)),
    ("layer3.5.conv1.weight", (256, 1024, 1, 1)),
    ("layer3.5.bn1.weight", (256,)),
    ("layer3.5.bn1.bias", (256,)),
    ("layer3.5.conv2.weight", (256, 256, 3, 3)),
    ("layer3.5.bn2.weight", (256,)),
    ("layer3.5.bn2.bias", (256,)),
    ("layer3.5.conv3.weight", (1024, 256, 1, 1)),
    ("layer3.5.bn3.weight", (1024,)),
    ("layer3.5.bn3.bias", (1024,)),
    ("layer4.0.conv1.weight", (512, 1024, 1, 1)),
    ("layer4.0.bn1.weight", (512,)),
    ("layer4.0.bn1.bias", (512,)),
    ("layer4.0.conv2.weight", (512, 512, 3, 3)),
    ("layer4.0.bn2.weight", (512,)),
    ("layer4.0.bn2.bias", (512,)),
    ("layer4.0.conv3.weight", (2048, 512, 1, 1)),
    ("layer4.0.bn3.weight", (2048,)),
    ("layer4.0.bn3.bias", (2048,)),
    ("layer4.0.downsample.0.weight", (2048, 1024, 1, 1)),
    ("layer4.0.downsample.1.weight", (2048,)),
    ("layer4.0.downsample.1.bias", (2048,)),
    ("layer4.1.conv1.weight", (512, 2048, 1, 1)),
    ("layer4.1.bn1.weight", (512,)),
    ("layer4.1.bn1.bias", (512,)),
    ("layer4.1.conv2.weight", (512, 512, 3, 3)),
    ("layer4.1.bn2.weight", (512,)),
    ("layer4.1.bn2.bias", (512,)),
    ("layer4.1.conv3.weight", (2048, 512, 1, 1)),
    ("layer4.1.bn3.weight", (2048,)),
    ("layer4.1.bn3.bias", (2048,)),
    ("layer4.2.conv1.weight", (512, 2048, 1, 1)),
    ("layer4.2.bn1.weight", (512,)),
    ("layer4.2.bn1.bias", (512,)),
    ("layer4.2.conv2.weight", (512, 512, 3, 3)),
    ("layer4.2.bn2.weight", (512,)),
    ("layer4.2.bn2.bias", (512,)),
    ("layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("layer4.2.bn3.weight", (2048,)),
    ("layer4.2.bn3.bias", (2048,)),
    ("fc.weight", (1000, 2048)),
    ("fc.bias", (1000,)),
)


@dataclass(frozen=True)
class ParameterList:
    """One benchmark parameter list: a short key, a label for tables, and the array shapes."""

    key: str
    label: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def values(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def penalty_lists(tiny: bool = False) -> list[ParameterList]:
    """Issue 3's three lists: (a) 200 x 256x256, (b) ResNet-50, (c) 1000 x 64 (overhead-bound).

    tiny=True keeps the three kinds of list but shrinks them (few arrays) so a test run takes
    milliseconds; its labels say so and its figures are not benchmark results.
    """
    resnet = tuple(shape for _, shape in RESNET50_PARAMETERS)
    if tiny:
        return [
            ParameterList("a", "a: 2 x 256x256 (tiny)", ((256, 256),) * 2),
            ParameterList("b", "b: ResNet-50 first 12 (tiny)", resnet[:12]),
            ParameterList("c", "c: 50 x 64 (tiny)", ((64,),) * 50),
        ]
    return [
        ParameterList("a", "a: 200 x 256x256", ((256, 256),) * 200),
        ParameterList("b", "b: ResNet-50 (161)", resnet),
        ParameterList("c", "c: 1000 x 64", ((64,),) * 1000),
    ]
