import { ConflictError, ExitCode, ModelctlError, UsageError } from '../core/errors.js';
import type { GateEvent, RolloutEvent, RolloutEventType } from '../core/events.js';
import type { GatePhase, GateResult, GateSpec } from '../core/gates.js';
import type { LockRecord, Outcome, RolloutPlan, TrafficSplit, VersionRef } from '../core/model.js';
import { sharedPerCheck, type Clock, type MetricSource, type Target } from '../core/ports.js';
import type { GateContext, GateEvaluator } from '../gates/contracts.js';
import { defaultGateRegistry } from '../gates/registry.js';
import {
  acquireLock,
  DEFAULT_LOCK_TTL_MS,
  describeLock,
  isOwner,
  iso,
  LockedError,
  LockLostError,
  lockState,
  releaseLock,
  renewLock,
  type HolderGone,
  type LockOwner,
} from '../ledger/lock.js';
import type { LedgerStore, ModelLedger, Release, ReleaseState, StepRecord, Versioned } from '../ledger/model.js';
import { StepAnalysis, type StepDecision } from './analysis.js';
import { CANDIDATE_READY, candidateReady } from './candidate-ready.js';
import type { EvaluationInput } from '../gates/evaluation.js';
import { runEvaluation, type EvaluationEvent, type EvaluationReport } from './evaluation.js';
import { updateLedger, updateLedgerAt } from './ledger-update.js';
import { normalizePlan } from './plan.js';
import { closeOpenStep, latestRelease, stableRecords } from './queries.js';
import { decideRollback, recordRollback, type RollbackDecision } from './rollback.js';
import { RolloutInterruptedError, type DeployOptions, type ResolveResult, type RollbackOptions, type RollbackResult, type RolloutResult, type HistoryEntry, type StatusView } from './results.js';
import { sameSplit, soleSplit, stepSplit } from './splits.js';
import { historyOf, statusOf } from './status.js';

/**
 * The rollout engine: a deterministic state machine over a Target, a MetricSource, a LedgerStore
 * and a Clock. It has no I/O of its own, so tests drive it with fakes and virtual time.
 *
 * The ledger is the state. Every transition is written (compare-and-swap) BEFORE it is acted on:
 * the phase, the step, the traffic about to be applied. A deploy killed at any point therefore
 * leaves a rollout record that `abort` (all traffic back on stable), `promote` (finish) or
 * `deploy --resume` (redo the recorded phase) can resolve, because every Target call is idempotent.
 * `drive()` is the one loop that walks a rollout from whatever phase the ledger records.
 *
 *   starting ──ready──▶ shadow ──pass──▶ canary[0..n] ──pass──▶ promoting ──▶ (stable)
 *      │                  │ │                 │ │
 *      │                  │ └─hold─▶ held ◀───┘ │        held ──promote──▶ promoting
 *      └──not ready───────┴──fail/abort─────────┴──▶ rolling-back ──▶ (failed | aborted | shadowed)
 */

/** How long a warm version may take to come back when a rollback finds it stopped. */
const DEFAULT_READY_TIMEOUT_MS = 120_000;

export interface EngineDeps {
  target: Target;
  metrics: MetricSource;
  ledger: LedgerStore;
  clock: Clock;
  /** Who this modelctl is; written into the lock and the releases it starts. */
  holder: LockOwner;
  /** Judges gates; default: the registry of built-in gate kinds (local). */
  evaluator?: GateEvaluator;
  /** Every event as it happens (progress output); the result carries them all too. */
  onEvent?: (event: RolloutEvent) => void;
  /** How long the lock outlives its last renewal. Default 60 s. */
  lockTtlMs?: number;
  /** Recognises a dead lock holder before its lock expires (the local target checks pids on this host). */
  holderGone?: HolderGone;
}

/** The per-call context: which rollout, its events, and the ledger as last written. */
interface Run {
  model: string;
  version: string;
  digest: string;
  doc: ModelLedger;
  events: RolloutEvent[];
  /** When the current bake's window started (after its traffic finished moving). */
  bakeStart: number;
  /** The ledger as this run last wrote it, with its revision (the next write starts from it). */
  known?: Versioned<ModelLedger> | null;
  /** Aborted: stop the rollout to stable (DeployOptions.signal). */
  signal?: AbortSignal | undefined;
  /** What interrupted it, once the engine acted on `signal`. */
  interruptedBy?: string;
  /** DeployOptions.evaluation, and what its replay gave (the report; bad input found by it, raised once rolled back). */
  evaluation?: EvaluationInput | undefined;
  evaluationReport?: EvaluationReport;
  refused?: ModelctlError;
}

type EndState = Extract<ReleaseState, 'failed' | 'aborted' | 'shadowed'>;

export class RolloutEngine {
  private readonly evaluator: GateEvaluator;
  private readonly ttl: number;

  constructor(private readonly deps: EngineDeps) {
    this.evaluator = deps.evaluator ?? defaultGateRegistry();
    this.ttl = deps.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
  }

  // ───────────────────────────── public API ─────────────────────────────

  /** Roll `ref` out following `plan`; resolves with the outcome (never throws for a gate verdict). */
  async deploy(ref: VersionRef, plan: RolloutPlan, opts: DeployOptions = {}): Promise<RolloutResult> {
    if (opts.signal?.aborted) {
      throw new ModelctlError(ExitCode.interrupted, `interrupted by ${interruptionName(opts.signal)} before the rollout of ${ref.model}@${ref.version} started: nothing changed`);
    }
    const normalized = await this.checkedPlan(ref, plan);
    const run = this.newRun(ref.model, ref.version, ref.digest);
    run.signal = opts.signal;
    run.evaluation = opts.evaluation;
    // Assigned inside the CAS callback (which may run more than once; the last run counts).
    let mode = 'new' as 'new' | 'resume' | 'noop';
    let tookOver = null as LockRecord | null;
    try {
      run.doc = await updateLedger(this.deps.ledger, ref.model, (doc) => {
        const r = this.beginDeploy(doc, ref, normalized, opts);
        mode = r.mode;
        tookOver = r.tookOver;
        return mode === 'noop' ? false : undefined;
      });
    } catch (err) {
      throw this.interrupted(run, err, `deploy of ${ref.model}@${ref.version}`);
    }
    if (mode === 'noop') {
      this.emit(run, 'already-serving', { version: ref.version });
      // The ledger says it serves; make the target agree (a runtime restarted with --forget, a lost
      // node): every Target call is idempotent, so on a healthy target this changes nothing.
      try {
        await this.ensureRunning(run, ref.version, ref.digest, normalized.readyTimeoutMs);
        await this.deps.target.applyTraffic(ref.model, run.doc.traffic);
      } catch (err) {
        throw this.interrupted(run, err, `re-applying ${ref.model}@${ref.version}`);
      }
      return this.result(run, 'promoted', `${ref.version} (${ref.digest}) is already serving`, null);
    }
    if (tookOver) this.emit(run, 'lock-taken-over', { previous: tookOver });
    this.emit(run, mode === 'resume' ? 'rollout-resumed' : 'rollout-started', {
      version: ref.version,
      digest: ref.digest,
      phase: run.doc.rollout!.phase,
      stable: run.doc.stableSet[0] ?? null,
      steps: run.doc.rollout!.plan.steps,
      ...(mode === 'resume' && opts.resumeTimings ? { changed: opts.resumeTimings } : {}),
    });
    const result = await this.guarded(run, () => this.drive(run));
    // Bad input found by the evaluation replay (an expected field the model never returns): rolled back, then refused.
    if (run.refused) throw run.refused;
    return result;
  }

  /**
   * Every check a deploy makes on its plan before it changes anything, for `deploy --dry-run` too
   * (one validation path): the plan itself, what the target can carry out, and — against the
   * ledger's serving version — that some gate judges the candidate before it gets all traffic.
   * Returns the plan as the engine runs it (steps ending at 100).
   */
  async checkPlan(ref: VersionRef, plan: RolloutPlan): Promise<RolloutPlan> {
    const normalized = await this.checkedPlan(ref, plan);
    const { doc } = await this.deps.ledger.read(ref.model);
    if (doc.stableSet[0] !== ref.version && !doc.rollout) this.refuseUnjudged(doc, ref, normalized);
    return normalized;
  }

  private async checkedPlan(ref: VersionRef, plan: RolloutPlan): Promise<RolloutPlan> {
    const normalized = normalizePlan(plan, (g) => this.evaluator.validate?.(g) ?? []);
    // A plan this target cannot carry out (e.g. shadow without a mirroring router) is bad input, refused before anything changes.
    await this.deps.target.checkPlan?.(ref.model, normalized, ref);
    return normalized;
  }

  /**
   * No plan may promote a candidate no gate has judged: with a stable version serving, at least
   * one canary step below 100% or a shadow phase must be judged by a (non dry-run) gate. A 100%
   * step is not baked instead, because at 100% every caller is on the unjudged candidate and the
   * comparison gates lose their baseline (the stable version gets no traffic to compare with).
   * A first deploy has nobody to compare with: its gate is the health check (see start()).
   */
  private refuseUnjudged(doc: ModelLedger, ref: VersionRef, plan: RolloutPlan): void {
    if (doc.stableSet.length === 0) return;
    const judging = (phase: GatePhase) => plan.gates.some((g) => !g.dryRun && this.phasesOf(g).includes(phase));
    const canary = plan.steps.some((w) => w < 100) && judging('canary');
    const shadow = plan.shadowPercent > 0 && judging('shadow');
    if (canary || shadow) return;
    const why = plan.steps.every((w) => w >= 100) && !(plan.shadowPercent > 0)
      ? `its only step is 100%, so all traffic would move to ${ref.version} before any gate judged it`
      : 'none of its gates (dry-run gates do not count) judges the steps before 100%';
    throw new UsageError(`refusing to roll ${doc.model}@${ref.version} out over ${doc.stableSet[0]}: ${why}`, {
      hint: 'give it at least one judged canary step below 100% (e.g. --steps 10,100 or --canary 10%) or a shadow phase (--shadow 10%), with gates for it',
      details: { model: doc.model, version: ref.version, steps: plan.steps, shadowPercent: plan.shadowPercent, gates: plan.gates.map((g) => g.name) },
    });
  }

  /** Promote the rollout in progress: ask the live deploy, or finish a held/interrupted one here. */
  promote(model: string, by = this.deps.holder.holder): Promise<ResolveResult> {
    return this.resolve(model, 'promote', by);
  }

  /** Abort the rollout in progress: all traffic back on the serving stable version, candidate aborted. */
  abort(model: string, by = this.deps.holder.holder): Promise<ResolveResult> {
    return this.resolve(model, 'abort', by);
  }

  /** Instant switch of all traffic to a warm version of the stable set (default: the previous stable). */
  async rollback(model: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
    const run = this.newRun(model, '', '');
    let plan = null as RollbackDecision | null;
    let tookOver = null as LockRecord | null;
    run.doc = await updateLedger(this.deps.ledger, model, (doc) => {
      this.refuseIfRollout(doc);
      const decided = decideRollback(doc, model, opts);
      plan = decided;
      if (decided.action !== 'switched') return false;
      // No rollout is in progress (checked above): an expired lock is the tail of a crashed
      // rollback or promotion, which leaves nothing half-done to resolve. Safe to take.
      const now = this.now();
      tookOver = acquireLock(doc, this.deps.holder, now, this.ttl, { takeOverExpired: true, holderGone: this.deps.holderGone });
      recordRollback(doc, decided, { by: this.deps.holder.holder, now, keepStable: opts.keepStable ?? false });
    });
    if (!plan) throw new Error('bug: rollback decided nothing');
    const p = plan;
    const base = { model, action: p.action, from: p.from, to: p.to, digest: p.digest, stableSet: run.doc.stableSet, events: run.events };
    if (p.action !== 'switched') return { ...base, healthy: null };
    if (tookOver) this.emit(run, 'lock-taken-over', { previous: tookOver });
    try {
      this.emit(run, 'rollback-started', { from: p.from, to: p.to });
      // Warm by contract, but a restarted runtime may have lost it: starting it is a no-op when it runs.
      await this.ensureRunning(run, p.to, p.digest, DEFAULT_READY_TIMEOUT_MS);
      await this.applyTraffic(run, soleSplit(p.to));
      const healthy = await this.deps.target.healthy(model, p.to);
      if (!healthy) this.emit(run, 'stable-unhealthy', { version: p.to });
      this.emit(run, 'rolled-back', { to: p.to, from: p.from, healthy });
      // Stop the version that left the set — unless the one now serving is unhealthy: then it is
      // the only other running version, kept for whoever repairs this.
      if (p.from && healthy && !run.doc.stableSet.includes(p.from)) await this.retire(run, p.from);
      await this.releaseQuietly(run);
      return { ...base, stableSet: run.doc.stableSet, healthy };
    } catch (err) {
      await this.releaseQuietly(run);
      throw this.interrupted(run, err, `rollback of ${model} to ${p.to}`);
    }
  }

  async status(model: string): Promise<StatusView> {
    const { doc } = await this.deps.ledger.read(model);
    return statusOf(model, doc, this.now(), this.deps.holderGone);
  }

  /** Releases, newest first. */
  async history(model: string): Promise<HistoryEntry[]> {
    const { doc } = await this.deps.ledger.read(model);
    return historyOf(doc);
  }

  // ───────────────────────────── starting a rollout ─────────────────────────────

  /** Checks and the first write of a deploy (runs inside a CAS update: pure on `doc`). */
  private beginDeploy(
    doc: ModelLedger,
    ref: VersionRef,
    plan: RolloutPlan,
    opts: DeployOptions,
  ): { mode: 'new' | 'resume' | 'noop'; tookOver: LockRecord | null } {
    const now = this.now();
    const r = doc.rollout;
    if (r) {
      const resumable = opts.resume && r.version === ref.version && r.digest === ref.digest && r.phase !== 'held';
      const ls = lockState(doc.lock, now, this.deps.holderGone);
      // Our own live lock (a failed attempt of this same driver could not release it) does not block our resume.
      if (!resumable || (ls.kind === 'live' && !isOwner(ls.lock, this.deps.holder))) this.refuseIfRollout(doc, ref);
      const tookOver = acquireLock(doc, this.deps.holder, now, this.ttl, { takeOverExpired: true, holderGone: this.deps.holderGone });
      r.holder = this.deps.holder.holder; // the new driver (the release keeps who started it)
      const changed = Object.entries(opts.resumeShape ?? {}).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(r.plan[k as keyof RolloutPlan]));
      if (changed.length > 0) {
        const said = changed.map(([k, v]) => `${k} ${JSON.stringify(v)} (recorded: ${JSON.stringify(r.plan[k as keyof RolloutPlan])})`).join(', ');
        throw new UsageError(`--resume continues the recorded plan of ${doc.model}@${r.version}; it cannot change its ${said} half-way`, {
          hint: `resume without those flags (timings such as --interval, --check-every, --shadow-duration, --ready-timeout do apply), or modelctl abort ${doc.model} and deploy again with the new plan`,
          details: { model: doc.model, version: r.version, recorded: r.plan, given: opts.resumeShape },
        });
      }
      if (opts.resumeTimings) {
        const timed = { ...r.plan, ...opts.resumeTimings };
        r.plan = { ...timed, checkEveryMs: Math.min(timed.checkEveryMs, timed.intervalMs) };
      }
      return { mode: 'resume', tookOver };
    }
    if (opts.resume) {
      throw new UsageError(`there is no interrupted rollout of ${doc.model} to resume`, { hint: `deploy without --resume, or see modelctl status ${doc.model}` });
    }
    // No rollout in progress, so an expired lock only guards a finished tail; taking it is safe.
    const tookOver = acquireLock(doc, this.deps.holder, now, this.ttl, { takeOverExpired: true, holderGone: this.deps.holderGone });
    const known = latestRelease(doc, ref.version);
    if (known && known.digest !== ref.digest) {
      throw new ConflictError(`${doc.model}@${ref.version} was deployed here as ${known.digest}, not ${ref.digest}`, {
        hint: 'versions are immutable: bump the version of the changed bundle',
        details: { model: doc.model, version: ref.version, ledgerDigest: known.digest, digest: ref.digest },
      });
    }
    if (doc.stableSet[0] === ref.version) return { mode: 'noop', tookOver: null };
    if (doc.stableSet.includes(ref.version)) {
      throw new UsageError(`${doc.model}@${ref.version} is already in the stable set (${doc.stableSet.join(', ')}) and running`, {
        hint: `switch to it instantly: modelctl rollback ${doc.model} --to ${ref.version}`,
      });
    }
    this.refuseUnjudged(doc, ref, plan);
    if (doc.stableSet.length === 0 && plan.shadowOnly) {
      throw new UsageError(`${doc.model} has no stable version to shadow: a shadow-only rollout needs one serving`, { hint: 'deploy it without --shadow-only first' });
    }
    doc.releases.push({ version: ref.version, digest: ref.digest, state: 'deploying', startedAt: now, endedAt: null, reason: null, startedBy: this.deps.holder.holder, steps: [] });
    doc.rollout = { version: ref.version, digest: ref.digest, phase: 'starting', stepIndex: -1, plan, startedAt: now, holder: this.deps.holder.holder, requested: null, requestedBy: null, requestedAt: null };
    return { mode: 'new', tookOver };
  }

  /** A rollout exists: say who drives it, or that it is held or interrupted, and how to resolve it. */
  private refuseIfRollout(doc: ModelLedger, ref?: VersionRef): void {
    const r = doc.rollout;
    if (!r) return;
    const ls = lockState(doc.lock, this.now(), this.deps.holderGone);
    const what = `a rollout of ${doc.model}@${r.version} (${r.phase}${r.phase === 'canary' ? ` step ${r.stepIndex + 1}/${r.plan.steps.length}` : ''})`;
    const details = { model: doc.model, version: r.version, phase: r.phase, lock: doc.lock, lockState: ls.kind };
    if (ls.kind === 'live' && !isOwner(ls.lock, this.deps.holder)) {
      throw new LockedError(`${what} is running, driven by ${describeLock(ls.lock)}`, {
        hint: `wait for it, or stop it: modelctl abort ${doc.model} (or finish it: modelctl promote ${doc.model})`,
        details,
      });
    }
    if (r.phase === 'held') {
      throw new LockedError(`${what} is held for a human decision since ${iso(doc.releases.at(-1)?.endedAt ?? r.startedAt)}`, {
        hint: `decide first: modelctl promote ${doc.model}, or modelctl abort ${doc.model}`,
        details,
      });
    }
    const since = ls.kind === 'expired' ? `its lock (${describeLock(ls.lock)}) expired at ${iso(ls.lock.expiresAt)}` : 'nobody holds its lock';
    const resume = ref && ref.version === r.version ? `, or continue it: modelctl deploy ${doc.model}@${r.version} --resume` : '';
    // A candidate that was still starting never ran under any gate: promoting it is no resolution to offer.
    const promote = r.phase === 'starting' ? '' : ` or modelctl promote ${doc.model}`;
    throw new LockedError(`${what} was interrupted: ${since}, so the modelctl that drove it is presumed dead`, {
      hint: `resolve it: modelctl abort ${doc.model} (all traffic back on stable)${promote}${resume}`,
      details: { ...details, interrupted: true },
    });
  }

  // ───────────────────────────── the state machine ─────────────────────────────

  /** Walk the rollout recorded in the ledger until it ends (promoted, restored to stable, or held). */
  private async drive(run: Run): Promise<RolloutResult> {
    for (;;) {
      const r = run.doc.rollout;
      if (!r) throw new Error('bug: drive() without a rollout');
      // An interruption of this process (SIGINT/SIGTERM) is an abort, as long as the candidate is
      // still being judged; a promotion already decided is finished rather than reversed halfway.
      if (run.signal?.aborted && (r.phase === 'starting' || r.phase === 'shadow' || r.phase === 'canary')) {
        run.interruptedBy = interruptionName(run.signal);
        await this.beginRestore(run, 'aborted', `interrupted by ${run.interruptedBy}: aborted to stable`, null);
        continue;
      }
      // A request from another process wins over the machine's own plan: a human decided.
      if (r.requested === 'abort' && r.phase !== 'rolling-back') {
        await this.beginRestore(run, 'aborted', `aborted by ${r.requestedBy ?? 'a user'}`, null);
        continue;
      }
      if (r.requested === 'promote' && (r.phase === 'shadow' || r.phase === 'canary' || r.phase === 'held')) {
        this.emit(run, 'promote-requested', { by: r.requestedBy });
        if (r.plan.shadowOnly) {
          // A shadow-only rollout never serves: "promote" can only mean "call the shadow a pass".
          await this.beginRestore(run, 'shadowed', `shadow-only rollout: passed by ${r.requestedBy ?? 'a user'}, not promoted`, null);
        } else {
          await this.enterPromoting(run, `promoted by ${r.requestedBy ?? 'a user'}`);
        }
        continue;
      }
      switch (r.phase) {
        case 'starting':
          await this.start(run);
          break;
        case 'shadow':
        case 'canary':
          await this.bakeStep(run, r.phase);
          break;
        case 'held':
          return this.hold(run);
        case 'promoting':
          return this.finishPromotion(run);
        case 'rolling-back':
          return this.finishRestore(run);
      }
    }
  }

  /** Deploy the candidate and wait for it; then the first real phase. */
  private async start(run: Run): Promise<void> {
    const { target } = this.deps;
    const plan = run.doc.rollout!.plan;
    // Pulling the bundle and waiting for readiness may legitimately take a while: announce it
    // (renew the lock that far ahead) so a slow but living deploy is never presumed dead.
    await this.write(run, () => {}, plan.readyTimeoutMs);
    try {
      await target.deploy({ model: run.model, version: run.version, digest: run.digest }, { candidate: true });
    } catch (err) {
      await this.abandonStart(run, err);
      throw err;
    }
    this.emit(run, 'version-deployed', { version: run.version });
    if (run.signal?.aborted) return; // drive() aborts: nothing was routed to it yet
    await this.write(run, () => {}, plan.readyTimeoutMs);
    try {
      // An interruption does not wait out the readiness timeout (the wait itself only polls).
      if ((await untilAborted(target.waitReady(run.model, run.version, plan.readyTimeoutMs), run.signal)) === ABORTED) return;
    } catch (err) {
      const reason = `${run.version} did not become ready: ${message(err)}`;
      this.emit(run, 'version-not-ready', { version: run.version, reason });
      await this.beginRestore(run, 'failed', reason, null);
      return;
    }
    this.emit(run, 'version-ready', { version: run.version });
    const stable = run.doc.stableSet[0];
    // Evaluation replay: before any live traffic, so a failing one rolls back with none served by the candidate.
    const evaluated = await runEvaluation(this.deps.target, run, plan, stable ?? null, (e) => this.emitEvaluation(run, e), (ms) => this.write(run, () => {}, ms));
    if (run.signal?.aborted) return; // interrupted during the replay: drive() aborts (no traffic moved)
    if (evaluated.failed) return this.beginRestore(run, 'failed', evaluated.reason, null);
    if (!stable) {
      // First deploy: nothing to compare with and nobody to protect but the future users —
      // a live health check is the gate, then all traffic.
      const healthy = await target.healthy(run.model, run.version);
      this.emit(run, 'gate-evaluated', { gate: 'health', verdict: healthy ? 'pass' : 'fail', version: run.version });
      if (!healthy) return this.beginRestore(run, 'failed', `health check of ${run.version} failed`, null);
      return this.enterPromoting(run, 'first version of the model: health check passed');
    }
    if (plan.shadowPercent > 0) return this.enterStep(run, 'shadow', -1, null);
    return this.enterStep(run, 'canary', 0, null);
  }

  /**
   * The candidate could not even be started (a corrupt bundle, no serve section, the runtime's port
   * taken, a full disk): no traffic moved, so the model is left exactly as it was — the release is
   * recorded as failed, no rollout remains and the lock is free — before the error is reported.
   * If the ledger cannot be written either, the rollout stays recorded and guarded() reports it.
   */
  private async abandonStart(run: Run, err: unknown): Promise<void> {
    // One line in the history (a runtime's start-up log can follow the message).
    const why = message(err).replace(/\s*\n\s*/g, ' | ');
    const reason = `could not start ${run.version}: ${why}`;
    const now = this.now();
    try {
      await this.write(run, (doc) => {
        Object.assign(this.candidate(doc), { state: 'failed', reason, endedAt: now });
        doc.rollout = null;
        releaseLock(doc, this.deps.holder);
      });
    } catch {
      return;
    }
    this.emit(run, 'start-failed', { version: run.version, reason: why });
    // Whatever part of it did start goes away; a version that never ran has nothing to stop.
    await this.deps.target.retire(run.model, run.version).catch(() => undefined);
  }

  /** Record the next step (phase, index, the split about to be applied) before applying it. */
  private async enterStep(run: Run, phase: 'shadow' | 'canary', stepIndex: number, closeWith: StepRecord['verdict']): Promise<void> {
    const plan = run.doc.rollout!.plan;
    const weight = phase === 'canary' ? plan.steps[stepIndex]! : 0;
    if (weight >= 100) return this.enterPromoting(run, 'all canary steps passed', closeWith);
    const split = this.splitOf(run.doc, phase, weight);
    const now = this.now();
    await this.write(run, (doc) => {
      const release = this.candidate(doc);
      closeOpenStep(release, now, closeWith);
      release.steps.push({ weight, mirror: split.mirror?.percent ?? 0, startedAt: now, endedAt: null, verdict: null, gates: [] });
      doc.rollout!.phase = phase;
      doc.rollout!.stepIndex = stepIndex;
      doc.traffic = split;
    });
  }

  /** The split of the rollout's current step (splits.ts), from the stable set and the recorded plan. */
  private splitOf(doc: ModelLedger, phase: 'shadow' | 'canary', weight: number): TrafficSplit {
    const r = doc.rollout!;
    return stepSplit(doc.stableSet[0]!, r.version, phase === 'shadow' ? { phase, percent: r.plan.shadowPercent } : { phase, weight });
  }

  /**
   * One shadow or canary step: (re)apply its recorded split — idempotent, so a resumed rollout
   * redoes it — then bake, then act on the verdict.
   */
  private async bakeStep(run: Run, phase: 'shadow' | 'canary'): Promise<void> {
    const r = run.doc.rollout!;
    const split = this.splitOf(run.doc, phase, phase === 'canary' ? r.plan.steps[r.stepIndex]! : 0);
    await this.switchTo(run, split);
    // The window starts when traffic finished moving; a resumed step starts over with fresh evidence.
    run.bakeStart = this.now();
    await this.write(run, (doc) => {
      const step = this.candidate(doc).steps.at(-1);
      if (step) Object.assign(step, { startedAt: run.bakeStart, endedAt: null, verdict: null, gates: [], tallies: [] });
    });
    this.emit(run, 'step-started', { phase, index: r.stepIndex, weight: phase === 'canary' ? r.plan.steps[r.stepIndex]! : 0, mirror: split.mirror?.percent ?? 0 });
    const duration = phase === 'shadow' ? r.plan.shadowDurationMs : r.plan.intervalMs;
    const decision = await this.bake(run, phase, duration);
    switch (decision.kind) {
      case 'requested':
        return; // drive() obeys the request
      case 'pass':
        this.emit(run, phase === 'shadow' ? 'shadow-passed' : 'step-passed', { index: r.stepIndex });
        if (phase === 'shadow' && r.plan.shadowOnly) return this.beginRestore(run, 'shadowed', 'shadow-only rollout: gates passed, not promoted', 'pass');
        return this.enterStep(run, 'canary', phase === 'shadow' ? 0 : r.stepIndex + 1, 'pass');
      case 'fail':
        this.emit(run, 'step-failed', { index: r.stepIndex, gate: decision.gate, reason: decision.reason });
        return this.beginRestore(run, 'failed', decision.reason, 'fail');
      case 'hold':
        await this.enterHold(run, decision.reason);
        return;
    }
  }

  /**
   * Bake for `durationMs`, measuring every checkEveryMs. Each check renews the lock, records the
   * evidence in the ledger and reads it back — which is how a promote/abort request from another
   * process arrives.
   */
  private async bake(run: Run, phase: GatePhase, durationMs: number): Promise<Exclude<StepDecision, { kind: 'continue' }> | { kind: 'requested' }> {
    const plan = run.doc.rollout!.plan;
    const gates = plan.gates.filter((g) => this.phasesOf(g).includes(phase));
    const analysis = new StepAnalysis([...gates, CANDIDATE_READY]);
    const end = run.bakeStart + durationMs;
    for (;;) {
      const wait = Math.min(plan.checkEveryMs, end - this.now());
      if (wait > 0) await this.deps.clock.sleep(wait, run.signal);
      if (run.signal?.aborted) return { kind: 'requested' }; // drive() aborts
      const now = this.now();
      const atEnd = now >= end;
      const source = sharedPerCheck(this.deps.metrics);
      for (const gate of gates) {
        if (now - run.bakeStart < (gate.initialDelayMs ?? 0)) continue;
        const result = await this.measure(run, gate, phase, now, source);
        analysis.record(result);
        this.emit(run, result.verdict === 'fail' ? 'gate-failed' : 'gate-evaluated', { phase, ...gateFields(result), dryRun: gate.dryRun ?? false });
      }
      const r = run.doc.rollout!;
      const ready = await candidateReady(this.deps.target, { model: run.model, version: run.version, phase, percent: phase === 'canary' ? (r.plan.steps[r.stepIndex] ?? 0) : r.plan.shadowPercent, now, sleep: (ms) => this.deps.clock.sleep(ms) });
      analysis.record(ready);
      this.emit(run, ready.verdict === 'fail' ? 'gate-failed' : 'gate-evaluated', { phase, ...gateFields(ready), dryRun: false });
      const decision = analysis.decide(atEnd);
      const next = atEnd ? 0 : Math.min(plan.checkEveryMs, end - now);
      await this.write(
        run,
        (doc) => {
          const step = this.candidate(doc).steps.at(-1);
          if (step) Object.assign(step, { gates: analysis.evidence(), tallies: analysis.counts() });
        },
        next,
      );
      if (run.doc.rollout!.requested) return { kind: 'requested' };
      if (decision.kind !== 'continue') return decision;
    }
  }

  /** One gate, one measurement; an evaluator that throws is a query error, not a crash. */
  private async measure(run: Run, gate: GateSpec, phase: GatePhase, now: number, source: MetricSource): Promise<GateResult> {
    const ctx: GateContext = {
      model: run.model,
      candidate: run.version,
      stable: run.doc.stableSet[0] ?? null,
      // The warm-up an initial delay waits out is not evidence either: it is left out of the window.
      sinceMs: run.bakeStart + (gate.initialDelayMs ?? 0),
      now,
      phase,
      // A signal stops a gate that runs something (a command's process group, an HTTP call) at once.
      ...(run.signal ? { signal: run.signal } : {}),
    };
    try {
      return await this.evaluator.evaluate(gate, ctx, source);
    } catch (err) {
      return { name: gate.name, verdict: 'error', value: null, limit: '', samples: 0, reason: message(err), query: '', at: now };
    }
  }

  private phasesOf(gate: GateSpec): GatePhase[] {
    return gate.phases ?? this.evaluator.phasesOf?.(gate) ?? ['shadow', 'canary'];
  }

  // ───────────────────────────── endings ─────────────────────────────

  /**
   * Inconclusive: leave traffic where it is, record why and free the lock in one write — a held
   * rollout has no driver; a human resolves it with promote or abort.
   */
  private async enterHold(run: Run, reason: string): Promise<void> {
    const now = this.now();
    await this.write(run, (doc) => {
      const release = this.candidate(doc);
      closeOpenStep(release, now, 'inconclusive');
      Object.assign(release, { state: 'held', reason, endedAt: now });
      doc.rollout!.phase = 'held';
      releaseLock(doc, this.deps.holder);
    });
  }

  private async hold(run: Run): Promise<RolloutResult> {
    await this.releaseQuietly(run); // normally already free (enterHold)
    const reason = this.candidate(run.doc).reason ?? 'gates inconclusive';
    this.emit(run, 'held', { reason, traffic: run.doc.traffic });
    return this.result(run, 'held', reason, null);
  }

  private async enterPromoting(run: Run, reason: string, closeWith: StepRecord['verdict'] = null): Promise<void> {
    const now = this.now();
    await this.write(run, (doc) => {
      const release = this.candidate(doc);
      closeOpenStep(release, now, closeWith);
      release.state = 'deploying';
      release.reason = reason;
      doc.rollout!.phase = 'promoting';
      // A promote request is now served; an abort that raced in stays for drive() to obey.
      if (doc.rollout!.requested === 'promote') doc.rollout!.requested = null;
      doc.traffic = soleSplit(run.version);
    });
  }

  /**
   * All traffic to the candidate, then ONE write makes it stable: the stable set gains it at the
   * front (three kept) and the rollout ends. Only then is the version pushed out of the set
   * retired — the one just replaced stays warm at 0% for an instant rollback.
   */
  private async finishPromotion(run: Run): Promise<RolloutResult> {
    await this.switchTo(run, soleSplit(run.version));
    const now = this.now();
    let pushedOut: string[] = [];
    await this.write(run, (doc) => {
      const release = this.candidate(doc);
      release.state = 'stable';
      release.endedAt = now;
      release.reason ??= 'promoted';
      const set = [run.version, ...doc.stableSet.filter((v) => v !== run.version)];
      pushedOut = set.slice(3);
      doc.stableSet = set.slice(0, 3);
      for (const v of pushedOut) {
        for (const old of stableRecords(doc, v)) Object.assign(old, { state: 'retired', endedAt: now, reason: `left the stable set when ${run.version} was promoted` });
      }
      doc.rollout = null;
    });
    this.emit(run, 'promoted', { version: run.version, stableSet: run.doc.stableSet });
    for (const v of pushedOut) await this.retire(run, v);
    await this.releaseQuietly(run);
    return this.result(run, 'promoted', latestRelease(run.doc, run.version)?.reason ?? 'promoted', null);
  }

  /**
   * The candidate leaves (failed, aborted, or done shadowing): record how it ended and the split
   * about to be applied — all traffic on the serving stable version — before switching.
   */
  private async beginRestore(run: Run, state: EndState, reason: string, closeWith: StepRecord['verdict']): Promise<void> {
    const now = this.now();
    if (state === 'failed') this.emit(run, 'rollback-started', { reason });
    if (state === 'aborted') this.emit(run, 'abort-started', { reason });
    await this.write(run, (doc) => {
      const release = this.candidate(doc);
      closeOpenStep(release, now, closeWith);
      Object.assign(release, { state, reason, endedAt: now });
      doc.rollout!.phase = 'rolling-back';
      doc.rollout!.requested = null;
      const stable = doc.stableSet[0];
      doc.traffic = stable ? soleSplit(stable) : { weights: {}, mirror: null };
    });
  }

  /**
   * All traffic on the serving stable version, and check it. If it is not healthy, cascade down
   * the stable set (2nd, then 3rd), recording each switch before making it. If none is healthy,
   * traffic goes back to the first (the version that served before the rollout) and the result
   * says so. Then the candidate is retired and the rollout ends.
   */
  private async finishRestore(run: Run): Promise<RolloutResult> {
    const release = this.candidate(run.doc);
    const state = release.state as EndState;
    const set = [...run.doc.stableSet];
    let serving: string | null = null;
    if (set.length === 0) {
      // A first deploy that failed: no version to fall back to; make sure the candidate serves
      // nothing (it may have reached 100% if a promotion was interrupted).
      await this.switchTo(run, { weights: {}, mirror: null });
    } else {
      // A resumed rollback continues the cascade where the ledger says it was, rather than
      // re-trying versions already found unhealthy.
      const recorded = Object.keys(run.doc.traffic.weights);
      const from = recorded.length === 1 && !run.doc.traffic.mirror ? Math.max(0, set.indexOf(recorded[0]!)) : 0;
      for (let k = from; k < set.length && serving === null; k++) {
        const v = set[k]!;
        if (k > from) this.emit(run, 'cascade', { from: set[k - 1]!, to: v });
        await this.switchTo(run, soleSplit(v));
        if (await this.deps.target.healthy(run.model, v)) serving = v;
        else this.emit(run, 'stable-unhealthy', { version: v });
      }
      if (serving === null) {
        serving = set[0]!;
        this.emit(run, 'no-healthy-stable', { tried: set, servingNow: serving });
        await this.switchTo(run, soleSplit(serving));
      }
    }
    const now = this.now();
    await this.write(run, (doc) => {
      this.candidate(doc).endedAt ??= now;
      if (serving) doc.stableSet = [serving, ...doc.stableSet.filter((v) => v !== serving)];
      doc.rollout = null;
    });
    const outcome: Extract<Outcome, 'aborted' | 'shadow-passed' | 'rolled-back'> = state === 'aborted' ? 'aborted' : state === 'shadowed' ? 'shadow-passed' : 'rolled-back';
    this.emit(run, outcome === 'shadow-passed' ? 'shadow-finished' : outcome, { to: serving, reason: release.reason });
    // Never stop a version the stable set still counts on (defensive: deploy refuses those).
    if (!run.doc.stableSet.includes(run.version)) await this.retire(run, run.version);
    await this.releaseQuietly(run);
    return this.result(run, outcome, release.reason ?? outcome, outcome === 'shadow-passed' ? null : serving);
  }

  // ───────────────────────────── promote / abort from another process ─────────────────────────────

  private async resolve(model: string, action: 'promote' | 'abort', by: string): Promise<ResolveResult> {
    const run = this.newRun(model, '', '');
    let requestedOnly = false as boolean;
    let tookOver = null as LockRecord | null;
    run.doc = await updateLedger(this.deps.ledger, model, (doc) => {
      const r = doc.rollout;
      if (!r) {
        const last = doc.releases.at(-1);
        throw new UsageError(`no rollout of ${model} is in progress${last ? ` (the latest release, ${last.version}, is ${last.state})` : ''}`, {
          hint: action === 'abort' ? `to leave the serving version, use modelctl rollback ${model}` : `modelctl status ${model}`,
        });
      }
      if (action === 'promote' && r.phase === 'rolling-back') {
        throw new UsageError(`the rollout of ${model}@${r.version} is already rolling back; it cannot be promoted`, { hint: `finish it with modelctl abort ${model}` });
      }
      const now = this.now();
      const ls = lockState(doc.lock, now, this.deps.holderGone);
      if (ls.kind === 'live' && !isOwner(ls.lock, this.deps.holder)) {
        if (r.phase === 'promoting' || r.phase === 'rolling-back') {
          throw new UsageError(`the rollout of ${model}@${r.version} is already ${r.phase}: too late to ${action}`, {
            hint: r.phase === 'promoting' ? `once it is done, modelctl rollback ${model}` : 'wait for it to finish',
          });
        }
        requestedOnly = true;
      } else {
        // Held (no lock) or interrupted (lock absent or expired): this command is the explicit
        // resolution, so it takes the lock over and drives the rollout to its end itself.
        tookOver = acquireLock(doc, this.deps.holder, now, this.ttl, { takeOverExpired: true, holderGone: this.deps.holderGone });
        r.holder = this.deps.holder.holder;
      }
      Object.assign(r, { requested: action, requestedBy: by, requestedAt: now });
      run.version = r.version;
      run.digest = r.digest;
    });
    this.emit(run, action === 'promote' ? 'promote-requested' : 'abort-requested', { by, version: run.version, driver: requestedOnly ? run.doc.lock?.holder : by });
    if (requestedOnly) return { kind: 'requested', model, version: run.version, action, holder: run.doc.lock!.holder };
    if (tookOver) this.emit(run, 'lock-taken-over', { previous: tookOver });
    return { kind: 'resolved', result: await this.guarded(run, () => this.drive(run)) };
  }

  // ───────────────────────────── small helpers ─────────────────────────────

  /** A change by the lock holder: renews the lock (for `extraMs` of silence ahead) or finds it lost. */
  private async write(run: Run, change: (doc: ModelLedger) => void, extraMs = 0): Promise<void> {
    // The lock holder's writes start from what it last wrote (CAS makes that safe: see updateLedgerAt).
    const written = await updateLedgerAt(
      this.deps.ledger,
      run.model,
      (doc) => {
        renewLock(doc, this.deps.holder, this.now(), this.ttl, extraMs);
        change(doc);
      },
      run.known ?? null,
    );
    run.doc = written.doc;
    run.known = written;
  }

  private async releaseLock(run: Run): Promise<void> {
    run.doc = await updateLedger(this.deps.ledger, run.model, (doc) => {
      if (!isOwner(doc.lock, this.deps.holder)) return false;
      releaseLock(doc, this.deps.holder);
    });
  }

  /**
   * Free our lock at the end of an operation whose outcome is already recorded: failing to is not
   * worth failing the command for — the lock simply expires after its TTL.
   */
  private async releaseQuietly(run: Run): Promise<void> {
    try {
      await this.releaseLock(run);
    } catch (err) {
      this.emit(run, 'lock-release-failed', { reason: message(err) });
    }
  }

  /** Record the split in the ledger (unless it already is), then apply it: the write-ahead rule. */
  private async switchTo(run: Run, split: TrafficSplit): Promise<void> {
    if (!sameSplit(run.doc.traffic, split)) await this.write(run, (doc) => void (doc.traffic = split));
    await this.applyTraffic(run, split);
  }

  /** Idempotent: make `version` run and wait until it is ready (a no-op for a running version). */
  private async ensureRunning(run: Run, version: string, digest: string, readyTimeoutMs: number): Promise<void> {
    await this.deps.target.deploy({ model: run.model, version, digest });
    await this.deps.target.waitReady(run.model, version, readyTimeoutMs);
  }

  private async applyTraffic(run: Run, split: TrafficSplit): Promise<void> {
    await this.deps.target.applyTraffic(run.model, split);
    this.emit(run, 'traffic-applied', { weights: split.weights, mirror: split.mirror });
  }

  /** Stopping a version that left the set is housekeeping: a failure is reported, never fatal. */
  private async retire(run: Run, version: string): Promise<void> {
    try {
      await this.deps.target.retire(run.model, version);
      this.emit(run, 'retired', { version });
    } catch (err) {
      this.emit(run, 'retire-failed', { version, reason: message(err) });
    }
  }

  /**
   * Run a rollout; an unexpected failure (a Target call threw, the ledger is unreachable) leaves
   * the rollout recorded as it was and frees the lock, so `abort`/`promote`/`--resume` can act at
   * once instead of waiting for the lock to expire.
   */
  private async guarded(run: Run, body: () => Promise<RolloutResult>): Promise<RolloutResult> {
    try {
      return await body();
    } catch (err) {
      if (err instanceof LockLostError) throw err; // somebody else owns it now: touch nothing
      await this.releaseQuietly(run);
      throw this.interrupted(run, err, `rollout of ${run.model}@${run.version}`);
    }
  }

  private interrupted(run: Run, err: unknown, what: string): ModelctlError {
    if (err instanceof ModelctlError) return err;
    const r = run.doc?.rollout ?? null;
    const where = r ? ` during ${r.phase}${r.phase === 'canary' ? ` step ${r.stepIndex + 1}` : ''}` : '';
    return new RolloutInterruptedError(ExitCode.unavailable, `${what} stopped${where}: ${message(err)}`, {
      hint: r
        ? `the ledger records where it stopped: modelctl abort ${run.model} puts all traffic back on stable; modelctl deploy ${run.model}@${r.version} --resume continues it`
        : `check the target, then re-run; modelctl status ${run.model}`,
      details: { model: run.model, version: run.version, phase: r?.phase ?? null, traffic: run.doc?.traffic ?? null },
      cause: err,
    });
  }

  /** The release record of the rollout's version (the latest one: a version may be retried). */
  private candidate(doc: ModelLedger): Release {
    const version = doc.rollout?.version;
    const release = version === undefined ? undefined : latestRelease(doc, version);
    if (!release) throw new Error(`bug: no release record for the rollout of ${doc.model}@${version}`);
    return release;
  }

  private newRun(model: string, version: string, digest: string): Run {
    // `doc` is set by the first ledger read/write of the operation.
    return { model, version, digest, doc: null as unknown as ModelLedger, events: [], bakeStart: 0 };
  }

  /** Record and hand over one event; `fields` are exactly those its type declares (core/events.ts). */
  private emit<T extends RolloutEventType>(run: Run, type: T, fields: EventFields<T>): void {
    // A member's fields plus its type and the time are that member: TypeScript cannot follow it through the generic.
    const event = { at: this.now(), type, ...fields } as RolloutEvent;
    run.events.push(event);
    this.deps.onEvent?.(event);
  }

  /** The evaluation phase's events (typed in core/events.ts), stamped like every other. */
  private emitEvaluation(run: Run, e: EvaluationEvent): void {
    const event: RolloutEvent = { at: this.now(), ...e };
    run.events.push(event);
    this.deps.onEvent?.(event);
  }

  private now(): number {
    return this.deps.clock.now();
  }

  private result(run: Run, outcome: Outcome, reason: string, rolledBackTo: string | null): RolloutResult {
    const release = latestRelease(run.doc, run.version);
    return {
      model: run.model,
      version: run.version,
      digest: run.digest,
      outcome,
      rolledBackTo,
      reason,
      serving: run.doc.stableSet[0] ?? null,
      stableSet: run.doc.stableSet,
      steps: release?.steps ?? [],
      events: run.events,
      ...(run.interruptedBy && outcome === 'aborted' ? { interrupted: run.interruptedBy } : {}),
      ...(run.evaluationReport ? { evaluation: run.evaluationReport } : {}),
    };
  }
}

const ABORTED = Symbol('aborted');

/** `p`, or ABORTED as soon as `signal` aborts (then p's eventual rejection is ignored). */
async function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return ABORTED;
  }
  let onAbort = () => {};
  const aborted = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const winner = await Promise.race([p, aborted]);
    if (winner === ABORTED) p.catch(() => undefined);
    return winner;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The name an AbortSignal was aborted with ('SIGINT'), or a generic word. */
function interruptionName(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'an interruption';
}






/** The fields of the event whose type(s) T names, without `at` and `type` (members may carry several types). */
type EventFields<T extends RolloutEventType> = RolloutEvent extends infer E ? (E extends { type: infer K } ? ([T] extends [K] ? Omit<E, 'at' | 'type'> : never) : never) : never;

function gateFields(r: GateResult): Pick<GateEvent, 'gate' | 'verdict' | 'value' | 'limit' | 'samples' | 'reason'> {
  return { gate: r.name, verdict: r.verdict, value: r.value, limit: r.limit, samples: r.samples, reason: r.reason };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
