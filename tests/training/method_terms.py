"""Which distillation terms each trainer runs on the tiny 2d plan, for the tests that train them and the
test that checks every trainer is tested (a helper module: test modules import from here, not from each other)."""

HLFD_TERMS = ["UFD", "IFD", "UPD", "IPD"]
# Every distillation trainer of trainers/nnUNetTrainerMobile.py -> the terms it runs on the tiny 2d plan.
MOBILE_METHODS = {
    "nnUNetTrainerHLFDMobile": HLFD_TERMS,
    "nnUNetTrainerHLFDMobileSmall": HLFD_TERMS,
    "nnUNetTrainerHLFDMobileLarge": HLFD_TERMS,
    "nnUNetTrainerKDMobile": ["KD"],
    "nnUNetTrainerATMobile": ["AT"],
    "nnUNetTrainerFitNetsMobile": ["FitNets"],
    "nnUNetTrainerSKDMobile": ["SKD_pixel", "SKD_pair"],
    "nnUNetTrainerSKD_HolisticMobile": ["SKD_pixel", "SKD_pair", "SKD_holistic"],
    "nnUNetTrainerIFVDMobile": ["IFVD", "IFVD_pixel", "IFVD_holistic"],
    "nnUNetTrainerCWDMobile": ["CWD"],
    "nnUNetTrainerEMKDMobile": ["EMKD_PMD", "EMKD_IMD", "EMKD_RAD"],
}
