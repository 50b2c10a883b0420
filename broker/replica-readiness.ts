// What "caught up" means for a broker's replicas, for /readyz: every partition that has a leader
// and lists this broker among its replicas also lists it in its ISR. A broker that has just
// restarted is a follower that is out of the ISR until it has fetched up to its leaders' high
// watermarks and they have proposed it back (the controller commits that to the metadata log,
// so the broker's own image shows it). Until then, stopping another replica of such a partition
// could take its ISR below min.insync.replicas: that is what a rolling restart (Kubernetes'
// StatefulSet update waits for readiness) must never do.
//
// Partitions without a leader are left out: no leader can take this replica back into the ISR,
// so waiting for them would keep the broker unready until someone else recovers, which helps
// nobody (the offline-partitions alert covers them).
import type { MetadataImage } from '../controller/index.js';

/** The most out-of-ISR partitions named in a /readyz answer; the rest are counted. */
export const READINESS_PARTITIONS_NAMED_MAX = 5;

/** The partitions (as topic-partition) this broker replicates, that have a leader, and whose ISR lacks it. */
export function replicasOutOfIsr(image: MetadataImage, selfId: number): string[] {
  const lagging: string[] = [];
  for (const topic of image.topics.values()) {
    for (const partition of topic.partitions) {
      if (partition.leader < 0 || !partition.replicas.includes(selfId)) continue;
      if (!partition.isr.includes(selfId)) lagging.push(`${topic.name}-${partition.partition}`);
    }
  }
  return lagging;
}

/** A readiness reason for out-of-ISR replicas, or undefined when there are none. */
export function outOfIsrReason(lagging: readonly string[]): string | undefined {
  if (lagging.length === 0) return undefined;
  const named = lagging.slice(0, READINESS_PARTITIONS_NAMED_MAX).join(', ');
  const more = lagging.length > READINESS_PARTITIONS_NAMED_MAX ? ` and ${lagging.length - READINESS_PARTITIONS_NAMED_MAX} more` : '';
  return `${lagging.length} replica(s) not yet back in the ISR: ${named}${more}`;
}
