// What a broker knows of the cluster around it, read from its metadata image: the cluster id,
// the registered brokers with their endpoints and states, and which controller is active.
import type { MetadataImage } from '../controller/index.js';

export interface BrokerView {
  nodeId: number;
  host: string;
  port: number;
  rack: string;
  roles: string[];
  httpEndpoint: string;
  state: string;
  epoch: number;
}

export interface ClusterView {
  readonly selfId: number;
  clusterId(): string;
  /** The active controller's node id, -1 when unknown. */
  controllerId(): number;
  /** Every registered broker, fenced ones included. */
  brokers(): BrokerView[];
  /** Brokers clients may use: registered, unfenced, with a listener. */
  liveBrokers(): BrokerView[];
  image(): MetadataImage;
}

export class ImageClusterView implements ClusterView {
  constructor(
    readonly selfId: number,
    private readonly currentImage: () => MetadataImage,
    private readonly activeControllerId: () => number,
  ) {}

  image(): MetadataImage {
    return this.currentImage();
  }

  clusterId(): string {
    return this.currentImage().cluster?.clusterId ?? '';
  }

  controllerId(): number {
    return this.activeControllerId();
  }

  brokers(): BrokerView[] {
    return [...this.currentImage().brokers.values()]
      .map((broker) => ({
        nodeId: broker.nodeId,
        host: broker.listener?.host ?? '',
        port: broker.listener?.port ?? 0,
        rack: broker.rack,
        roles: [...broker.roles],
        httpEndpoint: broker.http ? `${broker.http.host}:${broker.http.port}` : '',
        state: broker.state,
        epoch: broker.epoch,
      }))
      .sort((a, b) => a.nodeId - b.nodeId);
  }

  liveBrokers(): BrokerView[] {
    return this.brokers().filter((broker) => broker.state !== 'fenced' && broker.port > 0);
  }
}
