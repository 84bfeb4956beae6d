.core 0 0
    load r1, [r2+4, n=4
