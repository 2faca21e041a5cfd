"""The colours every plot draws with: Okabe & Ito's colour-blind-safe set (the boards' plots and a sweep's curves)."""

# Okabe & Ito (2008), "Color Universal Design": told apart under every common colour-vision deficiency
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
