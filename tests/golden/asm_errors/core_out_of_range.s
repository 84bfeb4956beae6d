.core 0 9
    halt
