.core 0 0
    mvm 0b000, ibits=16, adc=10, shift=12, obits=32, enc=0, skip=-1
