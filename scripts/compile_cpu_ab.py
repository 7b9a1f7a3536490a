#!/usr/bin/env python3
# Compiler CPU of unity builds against one object per file (docs/testing.md,
# "What it costs"). Usage:
#   cmake -S . -B /tmp/before -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DSLUICE_SANITIZE=thread \
#     -DSLUICE_WERROR=OFF -DSLUICE_UNITY=OFF
#   cmake -S . -B /tmp/after  -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DSLUICE_SANITIZE=thread \
#     -DSLUICE_WERROR=OFF
#   python3 scripts/compile_cpu_ab.py /tmp/before /tmp/after [TARGET-PATH-SUBSTRING...]
# For every target that the AFTER build compiles as unity units, compiles its
# files one by one with the BEFORE build's commands, then all of its files as
# the AFTER build compiles them, target by target (interleaved, so both see
# the same machine load), and prints user+sys CPU seconds. Only configures
# are needed, no build. Objects go to /tmp/ab_unity.o.
# Prints user+sys CPU seconds of each.
import json,shlex,subprocess,resource,sys,re,collections,os
bdir,adir=sys.argv[1],sys.argv[2]
B=json.load(open(bdir+'/compile_commands.json')); A=json.load(open(adir+'/compile_commands.json'))
def tgt(cmd):
    m=re.search(r'-o (\S+/CMakeFiles/[^/ ]+\.dir)/',cmd); return m.group(1) if m else None
def cpu(e,dirr):
    args=shlex.split(e['command']); i=args.index('-o'); args[i+1]='/tmp/ab_unity.o'
    r0=resource.getrusage(resource.RUSAGE_CHILDREN)
    p=subprocess.run(args,cwd=e['directory'],capture_output=True,text=True)
    r1=resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode: print('FAILED',e['file'],p.stderr[-2000:],flush=True)
    return r1.ru_utime-r0.ru_utime+r1.ru_stime-r0.ru_stime
ua=collections.defaultdict(list); unity_t=set()
for e in A:
    ua[tgt(e['command'])].append(e)
    if '/Unity/' in e['file']: unity_t.add(tgt(e['command']))
ua={t:v for t,v in ua.items() if t in unity_t}
bb=collections.defaultdict(list)
for e in B: bb[tgt(e['command'])].append(e)
tb=ta=0
only=sys.argv[3:]
for t,units in sorted(ua.items()):
    if only and not any(o in t for o in only): continue
    b=sum(cpu(e,bdir) for e in bb[t]); a=sum(cpu(e,adir) for e in units)
    tb+=b; ta+=a
    print('%-60s files %2d before %7.1f  unity %7.1f' % (t,len(bb[t]),b,a),flush=True)
print('TOTAL before %.1f unity %.1f' % (tb,ta),flush=True)
