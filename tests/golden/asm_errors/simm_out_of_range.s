.core 0 0
    rqnt r1, r2, n=4, shift=200, w=8
