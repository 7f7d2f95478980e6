"""torchvision's model builders and the weights enums that replace ``pretrained=``.

TL202 rewrites ``resnet18(pretrained=True)`` to
``resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)``; this table says, for every
builder torchvision ships, which enum its ``weights=`` takes and which member
``pretrained=True`` has always meant (torchvision's own ``handle_legacy_interface``
mapping), and for detection/segmentation builders the same for
``pretrained_backbone=`` / ``weights_backbone=``.

The rows were generated from torchvision 0.29.1 (every registered builder, the
legacy member read from the deprecation warning torchvision itself emits) and
``tests/test_torchvision_weights.py`` checks each one against the installed
torchvision when there is one. Plain data: importing this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

MODELS = "torchvision.models"


@dataclass(frozen=True)
class WeightsRef:
    """A weights enum and the member the legacy boolean flag selects."""

    enum: str
    # The member ``pretrained=True`` is equivalent to; None when torchvision has
    # no legacy weights for the builder (``pretrained=True`` raises ValueError).
    legacy: str | None
    # Public modules the enum can be reached from: the namespace that exports
    # it first (used for new imports), then the module that defines it.
    modules: tuple[str, ...]

    @property
    def home(self) -> str:
        return self.modules[0]


@dataclass(frozen=True)
class BuilderInfo:
    """One model builder: where it lives and what its ``weights``/``weights_backbone`` take."""

    name: str
    namespace: str  # e.g. "torchvision.models.detection"
    module: str  # the defining module, e.g. "torchvision.models.detection.faster_rcnn"
    weights: WeightsRef
    # ``pretrained_backbone=`` -> ``weights_backbone=`` (detection and segmentation).
    backbone: WeightsRef | None = None
    # Quantization builders: ``weights`` takes the float enum when ``quantize=False``.
    float_weights: WeightsRef | None = None

    @property
    def qualnames(self) -> tuple[str, str]:
        return (f"{self.namespace}.{self.name}", f"{self.module}.{self.name}")

    @property
    def quantizable(self) -> bool:
        return self.float_weights is not None


def B(name: str, module: str, enum: str, legacy: str | None, backbone: tuple[str, str] | None = None) -> tuple:
    return ("B", name, module, enum, legacy, backbone)


def Q(name: str, module: str, enum: str, legacy: str, float_enum: str, float_legacy: str) -> tuple:
    return ("Q", name, module, enum, legacy, (float_enum, float_legacy))


# torchvision.models
_CLASSIFICATION = (
    B("alexnet", "alexnet", "AlexNet_Weights", "IMAGENET1K_V1"),
    B("convnext_base", "convnext", "ConvNeXt_Base_Weights", "IMAGENET1K_V1"),
    B("convnext_large", "convnext", "ConvNeXt_Large_Weights", "IMAGENET1K_V1"),
    B("convnext_small", "convnext", "ConvNeXt_Small_Weights", "IMAGENET1K_V1"),
    B("convnext_tiny", "convnext", "ConvNeXt_Tiny_Weights", "IMAGENET1K_V1"),
    B("densenet121", "densenet", "DenseNet121_Weights", "IMAGENET1K_V1"),
    B("densenet161", "densenet", "DenseNet161_Weights", "IMAGENET1K_V1"),
    B("densenet169", "densenet", "DenseNet169_Weights", "IMAGENET1K_V1"),
    B("densenet201", "densenet", "DenseNet201_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b0", "efficientnet", "EfficientNet_B0_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b1", "efficientnet", "EfficientNet_B1_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b2", "efficientnet", "EfficientNet_B2_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b3", "efficientnet", "EfficientNet_B3_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b4", "efficientnet", "EfficientNet_B4_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b5", "efficientnet", "EfficientNet_B5_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b6", "efficientnet", "EfficientNet_B6_Weights", "IMAGENET1K_V1"),
    B("efficientnet_b7", "efficientnet", "EfficientNet_B7_Weights", "IMAGENET1K_V1"),
    B("efficientnet_v2_l", "efficientnet", "EfficientNet_V2_L_Weights", "IMAGENET1K_V1"),
    B("efficientnet_v2_m", "efficientnet", "EfficientNet_V2_M_Weights", "IMAGENET1K_V1"),
    B("efficientnet_v2_s", "efficientnet", "EfficientNet_V2_S_Weights", "IMAGENET1K_V1"),
    B("googlenet", "googlenet", "GoogLeNet_Weights", "IMAGENET1K_V1"),
    B("inception_v3", "inception", "Inception_V3_Weights", "IMAGENET1K_V1"),
    B("maxvit_t", "maxvit", "MaxVit_T_Weights", "IMAGENET1K_V1"),
    B("mnasnet0_5", "mnasnet", "MNASNet0_5_Weights", "IMAGENET1K_V1"),
    B("mnasnet0_75", "mnasnet", "MNASNet0_75_Weights", "IMAGENET1K_V1"),
    B("mnasnet1_0", "mnasnet", "MNASNet1_0_Weights", "IMAGENET1K_V1"),
    B("mnasnet1_3", "mnasnet", "MNASNet1_3_Weights", "IMAGENET1K_V1"),
    B("mobilenet_v2", "mobilenetv2", "MobileNet_V2_Weights", "IMAGENET1K_V1"),
    B("mobilenet_v3_large", "mobilenetv3", "MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
    B("mobilenet_v3_small", "mobilenetv3", "MobileNet_V3_Small_Weights", "IMAGENET1K_V1"),
    B("regnet_x_16gf", "regnet", "RegNet_X_16GF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_1_6gf", "regnet", "RegNet_X_1_6GF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_32gf", "regnet", "RegNet_X_32GF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_3_2gf", "regnet", "RegNet_X_3_2GF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_400mf", "regnet", "RegNet_X_400MF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_800mf", "regnet", "RegNet_X_800MF_Weights", "IMAGENET1K_V1"),
    B("regnet_x_8gf", "regnet", "RegNet_X_8GF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_128gf", "regnet", "RegNet_Y_128GF_Weights", None),
    B("regnet_y_16gf", "regnet", "RegNet_Y_16GF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_1_6gf", "regnet", "RegNet_Y_1_6GF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_32gf", "regnet", "RegNet_Y_32GF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_3_2gf", "regnet", "RegNet_Y_3_2GF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_400mf", "regnet", "RegNet_Y_400MF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_800mf", "regnet", "RegNet_Y_800MF_Weights", "IMAGENET1K_V1"),
    B("regnet_y_8gf", "regnet", "RegNet_Y_8GF_Weights", "IMAGENET1K_V1"),
    B("resnet101", "resnet", "ResNet101_Weights", "IMAGENET1K_V1"),
    B("resnet152", "resnet", "ResNet152_Weights", "IMAGENET1K_V1"),
    B("resnet18", "resnet", "ResNet18_Weights", "IMAGENET1K_V1"),
    B("resnet34", "resnet", "ResNet34_Weights", "IMAGENET1K_V1"),
    B("resnet50", "resnet", "ResNet50_Weights", "IMAGENET1K_V1"),
    B("resnext101_32x8d", "resnet", "ResNeXt101_32X8D_Weights", "IMAGENET1K_V1"),
    B("resnext101_64x4d", "resnet", "ResNeXt101_64X4D_Weights", "IMAGENET1K_V1"),
    B("resnext50_32x4d", "resnet", "ResNeXt50_32X4D_Weights", "IMAGENET1K_V1"),
    B("shufflenet_v2_x0_5", "shufflenetv2", "ShuffleNet_V2_X0_5_Weights", "IMAGENET1K_V1"),
    B("shufflenet_v2_x1_0", "shufflenetv2", "ShuffleNet_V2_X1_0_Weights", "IMAGENET1K_V1"),
    B("shufflenet_v2_x1_5", "shufflenetv2", "ShuffleNet_V2_X1_5_Weights", "IMAGENET1K_V1"),
    B("shufflenet_v2_x2_0", "shufflenetv2", "ShuffleNet_V2_X2_0_Weights", "IMAGENET1K_V1"),
    B("squeezenet1_0", "squeezenet", "SqueezeNet1_0_Weights", "IMAGENET1K_V1"),
    B("squeezenet1_1", "squeezenet", "SqueezeNet1_1_Weights", "IMAGENET1K_V1"),
    B("swin_b", "swin_transformer", "Swin_B_Weights", "IMAGENET1K_V1"),
    B("swin_s", "swin_transformer", "Swin_S_Weights", "IMAGENET1K_V1"),
    B("swin_t", "swin_transformer", "Swin_T_Weights", "IMAGENET1K_V1"),
    B("swin_v2_b", "swin_transformer", "Swin_V2_B_Weights", "IMAGENET1K_V1"),
    B("swin_v2_s", "swin_transformer", "Swin_V2_S_Weights", "IMAGENET1K_V1"),
    B("swin_v2_t", "swin_transformer", "Swin_V2_T_Weights", "IMAGENET1K_V1"),
    B("vgg11", "vgg", "VGG11_Weights", "IMAGENET1K_V1"),
    B("vgg11_bn", "vgg", "VGG11_BN_Weights", "IMAGENET1K_V1"),
    B("vgg13", "vgg", "VGG13_Weights", "IMAGENET1K_V1"),
    B("vgg13_bn", "vgg", "VGG13_BN_Weights", "IMAGENET1K_V1"),
    B("vgg16", "vgg", "VGG16_Weights", "IMAGENET1K_V1"),
    B("vgg16_bn", "vgg", "VGG16_BN_Weights", "IMAGENET1K_V1"),
    B("vgg19", "vgg", "VGG19_Weights", "IMAGENET1K_V1"),
    B("vgg19_bn", "vgg", "VGG19_BN_Weights", "IMAGENET1K_V1"),
    B("vit_b_16", "vision_transformer", "ViT_B_16_Weights", "IMAGENET1K_V1"),
    B("vit_b_32", "vision_transformer", "ViT_B_32_Weights", "IMAGENET1K_V1"),
    B("vit_h_14", "vision_transformer", "ViT_H_14_Weights", None),
    B("vit_l_16", "vision_transformer", "ViT_L_16_Weights", "IMAGENET1K_V1"),
    B("vit_l_32", "vision_transformer", "ViT_L_32_Weights", "IMAGENET1K_V1"),
    B("wide_resnet101_2", "resnet", "Wide_ResNet101_2_Weights", "IMAGENET1K_V1"),
    B("wide_resnet50_2", "resnet", "Wide_ResNet50_2_Weights", "IMAGENET1K_V1"),
)

# torchvision.models.detection
_DETECTION = (
    B("fasterrcnn_mobilenet_v3_large_320_fpn", "faster_rcnn", "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights", "COCO_V1", backbone=("MobileNet_V3_Large_Weights", "IMAGENET1K_V1")),
    B("fasterrcnn_mobilenet_v3_large_fpn", "faster_rcnn", "FasterRCNN_MobileNet_V3_Large_FPN_Weights", "COCO_V1", backbone=("MobileNet_V3_Large_Weights", "IMAGENET1K_V1")),
    B("fasterrcnn_resnet50_fpn", "faster_rcnn", "FasterRCNN_ResNet50_FPN_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("fasterrcnn_resnet50_fpn_v2", "faster_rcnn", "FasterRCNN_ResNet50_FPN_V2_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("fcos_resnet50_fpn", "fcos", "FCOS_ResNet50_FPN_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("keypointrcnn_resnet50_fpn", "keypoint_rcnn", "KeypointRCNN_ResNet50_FPN_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("maskrcnn_resnet50_fpn", "mask_rcnn", "MaskRCNN_ResNet50_FPN_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("maskrcnn_resnet50_fpn_v2", "mask_rcnn", "MaskRCNN_ResNet50_FPN_V2_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("retinanet_resnet50_fpn", "retinanet", "RetinaNet_ResNet50_FPN_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("retinanet_resnet50_fpn_v2", "retinanet", "RetinaNet_ResNet50_FPN_V2_Weights", "COCO_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("ssd300_vgg16", "ssd", "SSD300_VGG16_Weights", "COCO_V1", backbone=("VGG16_Weights", "IMAGENET1K_FEATURES")),
    B("ssdlite320_mobilenet_v3_large", "ssdlite", "SSDLite320_MobileNet_V3_Large_Weights", "COCO_V1", backbone=("MobileNet_V3_Large_Weights", "IMAGENET1K_V1")),
)

# torchvision.models.segmentation
_SEGMENTATION = (
    B("deeplabv3_mobilenet_v3_large", "deeplabv3", "DeepLabV3_MobileNet_V3_Large_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("MobileNet_V3_Large_Weights", "IMAGENET1K_V1")),
    B("deeplabv3_resnet101", "deeplabv3", "DeepLabV3_ResNet101_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("ResNet101_Weights", "IMAGENET1K_V1")),
    B("deeplabv3_resnet50", "deeplabv3", "DeepLabV3_ResNet50_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("fcn_resnet101", "fcn", "FCN_ResNet101_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("ResNet101_Weights", "IMAGENET1K_V1")),
    B("fcn_resnet50", "fcn", "FCN_ResNet50_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("ResNet50_Weights", "IMAGENET1K_V1")),
    B("lraspp_mobilenet_v3_large", "lraspp", "LRASPP_MobileNet_V3_Large_Weights", "COCO_WITH_VOC_LABELS_V1", backbone=("MobileNet_V3_Large_Weights", "IMAGENET1K_V1")),
)

# torchvision.models.video
_VIDEO = (
    B("mc3_18", "resnet", "MC3_18_Weights", "KINETICS400_V1"),
    B("mvit_v1_b", "mvit", "MViT_V1_B_Weights", "KINETICS400_V1"),
    B("mvit_v2_s", "mvit", "MViT_V2_S_Weights", "KINETICS400_V1"),
    B("r2plus1d_18", "resnet", "R2Plus1D_18_Weights", "KINETICS400_V1"),
    B("r3d_18", "resnet", "R3D_18_Weights", "KINETICS400_V1"),
    B("s3d", "s3d", "S3D_Weights", "KINETICS400_V1"),
    B("swin3d_b", "swin_transformer", "Swin3D_B_Weights", "KINETICS400_V1"),
    B("swin3d_s", "swin_transformer", "Swin3D_S_Weights", "KINETICS400_V1"),
    B("swin3d_t", "swin_transformer", "Swin3D_T_Weights", "KINETICS400_V1"),
)

# torchvision.models.quantization
_QUANTIZATION = (
    Q("googlenet", "googlenet", "GoogLeNet_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "GoogLeNet_Weights", "IMAGENET1K_V1"),
    Q("inception_v3", "inception", "Inception_V3_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "Inception_V3_Weights", "IMAGENET1K_V1"),
    Q("mobilenet_v2", "mobilenetv2", "MobileNet_V2_QuantizedWeights", "IMAGENET1K_QNNPACK_V1", "MobileNet_V2_Weights", "IMAGENET1K_V1"),
    Q("mobilenet_v3_large", "mobilenetv3", "MobileNet_V3_Large_QuantizedWeights", "IMAGENET1K_QNNPACK_V1", "MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
    Q("resnet18", "resnet", "ResNet18_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ResNet18_Weights", "IMAGENET1K_V1"),
    Q("resnet50", "resnet", "ResNet50_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ResNet50_Weights", "IMAGENET1K_V1"),
    Q("resnext101_32x8d", "resnet", "ResNeXt101_32X8D_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ResNeXt101_32X8D_Weights", "IMAGENET1K_V1"),
    Q("resnext101_64x4d", "resnet", "ResNeXt101_64X4D_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ResNeXt101_64X4D_Weights", "IMAGENET1K_V1"),
    Q("shufflenet_v2_x0_5", "shufflenetv2", "ShuffleNet_V2_X0_5_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ShuffleNet_V2_X0_5_Weights", "IMAGENET1K_V1"),
    Q("shufflenet_v2_x1_0", "shufflenetv2", "ShuffleNet_V2_X1_0_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ShuffleNet_V2_X1_0_Weights", "IMAGENET1K_V1"),
    Q("shufflenet_v2_x1_5", "shufflenetv2", "ShuffleNet_V2_X1_5_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ShuffleNet_V2_X1_5_Weights", "IMAGENET1K_V1"),
    Q("shufflenet_v2_x2_0", "shufflenetv2", "ShuffleNet_V2_X2_0_QuantizedWeights", "IMAGENET1K_FBGEMM_V1", "ShuffleNet_V2_X2_0_Weights", "IMAGENET1K_V1"),
)

# torchvision.models.optical_flow
_OPTICAL_FLOW = (
    B("raft_large", "raft", "Raft_Large_Weights", "C_T_SKHT_V2"),
    B("raft_small", "raft", "Raft_Small_Weights", "C_T_V2"),
)


def _build() -> dict[str, BuilderInfo]:
    sections = (
        (MODELS, _CLASSIFICATION),
        (f"{MODELS}.detection", _DETECTION),
        (f"{MODELS}.segmentation", _SEGMENTATION),
        (f"{MODELS}.video", _VIDEO),
        (f"{MODELS}.quantization", _QUANTIZATION),
        (f"{MODELS}.optical_flow", _OPTICAL_FLOW),
    )
    # Backbone and float enums are classification enums: reach them the way
    # their classification builder's own enum is reached.
    classification_home = {row[3]: f"{MODELS}.{row[2]}" for row in _CLASSIFICATION}

    def classification_ref(enum: str, legacy: str) -> WeightsRef:
        return WeightsRef(enum, legacy, (MODELS, classification_home[enum]))

    table: dict[str, BuilderInfo] = {}
    for namespace, rows in sections:
        for kind, name, module, enum, legacy, extra in rows:
            defining = f"{namespace}.{module}"
            ref = WeightsRef(enum, legacy, (namespace, defining))
            if kind == "Q":
                info = BuilderInfo(name, namespace, defining, ref, float_weights=classification_ref(*extra))
            else:
                backbone = None if extra is None else classification_ref(*extra)
                info = BuilderInfo(name, namespace, defining, ref, backbone=backbone)
            for qualname in info.qualnames:
                assert qualname not in table, qualname
                table[qualname] = info
    return table


#: Every qualified name a builder can be called by -> its facts.
BUILDERS: dict[str, BuilderInfo] = _build()
#: Builder function names, to skip calls cheaply before resolving names.
BUILDER_NAMES: frozenset[str] = frozenset(info.name for info in BUILDERS.values())


def _uniform_legacy(namespace: str, backbone: bool) -> str | None:
    members = set()
    for info in BUILDERS.values():
        ref = info.backbone if backbone else info.weights
        if info.namespace != namespace or info.quantizable or ref is None:
            continue
        if ref.legacy is not None:  # builders without legacy weights raise on pretrained=True anyway
            members.add(ref.legacy)
    return members.pop() if len(members) == 1 else None


#: For builders picked at run time (``models.__dict__[arch](pretrained=True)``): the
#: member every builder of a namespace maps the flag to, where they all agree. The
#: builders accept it as a string (``weights="IMAGENET1K_V1"``). Quantization is
#: absent: its member depends on the builder and on ``quantize=``.
NAMESPACE_LEGACY: dict[str, str] = {
    ns: member
    for ns in (MODELS, f"{MODELS}.detection", f"{MODELS}.segmentation", f"{MODELS}.video", f"{MODELS}.optical_flow")
    if (member := _uniform_legacy(ns, backbone=False)) is not None
}
NAMESPACE_BACKBONE_LEGACY: dict[str, str] = {
    ns: member
    for ns in (f"{MODELS}.detection", f"{MODELS}.segmentation")
    if (member := _uniform_legacy(ns, backbone=True)) is not None
}


def builder_info(qualname: str | None) -> BuilderInfo | None:
    """The builder a fully qualified name refers to, e.g. ``torchvision.models.resnet18``."""
    return None if qualname is None else BUILDERS.get(qualname)


def all_builders() -> list[BuilderInfo]:
    """Each builder once, in table order."""
    seen: dict[int, BuilderInfo] = {}
    for info in BUILDERS.values():
        seen.setdefault(id(info), info)
    return list(seen.values())


__all__ = ["BUILDERS", "BUILDER_NAMES", "NAMESPACE_BACKBONE_LEGACY", "NAMESPACE_LEGACY", "BuilderInfo", "WeightsRef", "all_builders", "builder_info"]
