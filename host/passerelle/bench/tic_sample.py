"""Representative TIC frame sequences for the benchmarks (portable subset: this
file is also run by the MicroPython unix port, so no f-strings/typing here).

Values evolve the way a real meter's do between two frames: the active energy
index advances, currents/powers/voltages wander, the standard-mode DATE changes
every frame; ids, tariff names, maxima and profiles stay put.  Shapes follow
the real captures (pyteleinfo historic mono Tempo, 16 groups / 275 bytes;
teleinfo-nom standard three-phase Tempo, 55 groups / ~1.26 KB).
"""


def historic_groups(i):
    """Historic single-phase Tempo frame number ``i`` as (label, value) pairs."""
    return [
        ('ADCO', '021861348497'), ('OPTARIF', 'BBR('), ('ISOUSC', '30'),
        ('BBRHCJB', '018328856'), ('BBRHPJB', '%09d' % (23739545 + (3 * i) // 2)),
        ('BBRHCJW', '001466099'), ('BBRHPJW', '002132883'), ('BBRHCJR', '000860118'),
        ('BBRHPJR', '000844115'), ('PTEC', 'HPJB'), ('DEMAIN', '----'),
        ('IINST', '%03d' % (12 + (i // 3) % 3)), ('IMAX', '090'),
        ('PAPP', '%05d' % (2840 + 10 * (i % 7))), ('HHPHC', 'A'), ('MOTDETAT', '000000'),
    ]


def standard_groups(i):
    """Standard three-phase Tempo frame number ``i`` as (label, value, horodate)."""
    g = [('ADSC', '041776199277', None), ('VTIC', '02', None),
         ('DATE', '', 'H2002142301%02d' % (i % 60)),
         ('NGTF', '     TEMPO      ', None), ('LTARF', '   HC  BLANC    ', None),
         ('EAST', '%09d' % (21849106 + i), None)]
    for k in range(1, 11):
        g.append(('EASF%02d' % k, '%09d' % (706363 * k + (i if k == 3 else 0)), None))
    for k in range(1, 5):
        g.append(('EASD%02d' % k, '%09d' % (1849107 * k + (i if k == 1 else 0)), None))
    g += [('IRMS1', '%03d' % (4 + i % 3), None), ('IRMS2', '%03d' % (3 + (i // 2) % 2), None),
          ('IRMS3', '002', None),
          ('URMS1', '%03d' % (230 + i % 4), None), ('URMS2', '%03d' % (231 + i % 3), None),
          ('URMS3', '%03d' % (229 + i % 5), None),
          ('PREF', '09', None), ('PCOUP', '09', None),
          ('SINSTS', '%05d' % (2000 + 13 * (i % 9)), None),
          ('SINSTS1', '%05d' % (900 + 7 * (i % 5)), None),
          ('SINSTS2', '%05d' % (700 + 3 * (i % 4)), None),
          ('SINSTS3', '%05d' % (400 + i % 6), None),
          ('SMAXSN', '05062', 'H200214075148'), ('SMAXSN1', '03411', 'H200214175135'),
          ('SMAXSN2', '01712', 'H200214072652'), ('SMAXSN3', '01599', 'H200214075151'),
          ('SMAXSN-1', '05340', 'H200213101142'), ('SMAXSN1-1', '01854', 'H200213101140'),
          ('SMAXSN2-1', '03366', 'H200213101142'), ('SMAXSN3-1', '01701', 'H200213072434'),
          ('CCASN', '01650', 'H200214230000'), ('CCASN-1', '00786', 'H200214225000'),
          ('UMOY1', '233', 'H200214230000'), ('UMOY2', '234', 'H200214230000'),
          ('UMOY3', '232', 'H200214230000'),
          ('STGE', '463A0800', None), ('DPM1', '00', ' 200214060000'),
          ('FPM1', '00', ' 200215060000'),
          ('MSG1', 'PAS DE          MESSAGE         ', None), ('PRM', '25137349123456', None),
          ('RELAIS', '000', None), ('NTARF', '03', None), ('NJOURF', '00', None),
          ('NJOURF+1', '00', None),
          ('PJOURF+1', '00004001 06004002 22004001 NONUTILE NONUTILE NONUTILE NONUTILE'
                       ' NONUTILE NONUTILE NONUTILE NONUTILE', None)]
    return g


def frames(kind, count):
    """``count`` encoded frames of ``kind`` ('historic' or 'standard')."""
    from protocols.tic import encode_frame, HISTORIC, STANDARD
    out = []
    for i in range(count):
        if kind == 'historic':
            out.append(encode_frame(historic_groups(i), HISTORIC))
        else:
            out.append(encode_frame(standard_groups(i), STANDARD))
    return out
