.core 0 0
    halt r1
