.core 0 0
    copy r7000, r1, n=4
