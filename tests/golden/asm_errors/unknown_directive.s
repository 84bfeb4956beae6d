.cor 0 0
    halt
