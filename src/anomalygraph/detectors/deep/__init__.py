"""Deep backbones on sliding windows (TranAD, Donut, TimesNet) behind one training loop and scorer."""
