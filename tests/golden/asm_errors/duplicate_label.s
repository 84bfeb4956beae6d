.core 0 0
loop:
    halt
loop:
    halt
