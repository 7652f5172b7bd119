# frozen_string_literal: true

# Redis Cluster through the Ruby binding: the same API as for one server,
# only the URL changes (issue 7). One cluster (3 masters, one replica each,
# on free loopback ports, as tests/support/cluster.c starts it for the C
# tests) is shared by the tests of this class and destroyed after the last
# one (RedisServer::ALL's at_exit otherwise). The Client tests check routing
# behind reactis's back (CLUSTER KEYSLOT and plain sockets to each node),
# follow a slot migration (ASK, then MOVED) and a killed master; the
# failover test restarts the killed node as a replica and waits until the
# cluster has 3 masters and 3 replicas again, since minitest runs the tests
# in random order.

require_relative "helper"
require "set"

class TestCluster < ReactisTest
  MASTERS = 3
  REPLICAS = 1

  # A started cluster: its nodes, URL and slot map.
  class Cluster
    attr_reader :nodes

    def initialize
      @nodes = []
    end

    def ports
      @nodes.map(&:port)
    end

    def url
      "redis://" + ports.map { |p| "127.0.0.1:#{p}" }.join(",")
    end

    def destroy
      @nodes.each(&:destroy)
      @nodes.clear
    end

    def self.text(reply)
      raise reply if reply.is_a?(Exception)
      reply.to_s
    end

    # Node port's CLUSTER NODES: [{port:, master:, fail:, ranges: [[a, b]]}].
    def self.view(port)
      text(RawRedis.command(port, "CLUSTER", "NODES")).lines.filter_map do |line|
        tok = line.split
        next if tok.size < 8
        flags = tok[2].split(",")
        ranges = tok[8..].reject { |t| t.start_with?("[") }.map do |t|
          a, b = t.split("-")
          [Integer(a), Integer(b || a)]
        end
        { port: Integer(tok[1].split("@").first.split(":").last),
          master: flags.include?("master"), fail: flags.include?("fail"), ranges: ranges }
      end
    end

    def self.slot_map(port)
      view(port).select { |n| n[:master] && !n[:fail] }
                .flat_map { |n| n[:ranges].map { |r| [r, n[:port]] } }.to_h
    end

    # The master port serving slot in node port's view.
    def self.owner(port, slot)
      slot_map(port).each { |(a, b), p| return p if slot.between?(a, b) }
      nil
    end

    def live_ports
      @nodes.select(&:running?).map(&:port)
    end

    # Master port => its slot ranges.
    def masters
      out = Hash.new { |h, k| h[k] = [] }
      self.class.slot_map(ports.first).each { |r, port| out[port] << r }
      out
    end

    # A key named prefix:i whose slot master port serves.
    def key_on(port, prefix)
      ranges = masters.fetch(port)
      100_000.times do |i|
        key = "#{prefix}:#{i}"
        slot = RawRedis.command(port, "CLUSTER", "KEYSLOT", key)
        return key if ranges.any? { |a, b| slot.between?(a, b) }
      end
      raise "no key found for port #{port}"
    end

    def start
      (MASTERS * (1 + REPLICAS)).times { @nodes << start_node }
      cli = ENV["RX_REDIS_CLI"] || "redis-cli"
      out = IO.popen([cli, "--cluster", "create", *ports.map { |p| "127.0.0.1:#{p}" },
                      "--cluster-replicas", REPLICAS.to_s, "--cluster-yes",
                      { err: %i[child out], in: File::NULL }], &:read)
      raise "redis-cli --cluster create failed:\n#{out}" unless $?.success?
      wait_ok
      self
    rescue StandardError
      destroy
      raise
    end

    # cluster_state:ok everywhere, the same full slot map on every node, no
    # master without slots (a replica whose role has not spread yet:
    # redis-cli returns before it has), every replica linked.
    def wait_ok(timeout = 30)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        ok = begin
          maps = ports.map { |p| self.class.slot_map(p) }
          ports.all? { |p| self.class.text(RawRedis.command(p, "CLUSTER", "INFO")).include?("cluster_state:ok") } &&
            maps.all? { |m| m == maps.first } &&
            maps.first.sum { |(a, b), _| b - a + 1 } == 16_384 &&
            maps.first.values.uniq.size == MASTERS && (maps.first.values - ports).empty? &&
            ports.none? { |p| self.class.view(p).any? { |n| n[:master] && n[:ranges].empty? && !n[:fail] } } &&
            ports.all? do |p|
              info = self.class.text(RawRedis.command(p, "INFO", "replication"))
              info.include?("role:master") || info.include?("master_link_status:up")
            end
        rescue SystemCallError, IOError, RuntimeError
          false
        end
        return if ok
        raise "the cluster did not become ok within #{timeout} s" if
          Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        sleep 0.05
      end
    end

    private

    def start_node
      3.times do
        # The cluster bus port is given: port + 10000 may be taken or > 65535.
        s = RedisServer.new(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-node-timeout", "2000",
                             "--cluster-port", RedisServer.free_port.to_s,
                             "--repl-diskless-sync-delay", "0"])
        begin
          s.start
        rescue RuntimeError
          s.destroy
          next
        end
        return s if ours?(s)
        s.destroy
      end
      raise "could not start a cluster node"
    end

    # The server answering on s.port is the process we started (two tests
    # picking the same free port at once could otherwise mix clusters).
    def ours?(s)
      pid = s.instance_variable_get(:@pid)
      self.class.text(s.command("INFO", "server")).include?("process_id:#{pid}\r")
    rescue SystemCallError, IOError
      false
    end
  end

  @cluster = nil
  @done = 0

  class << self
    attr_accessor :done

    def cluster
      @cluster ||= Cluster.new.start
    end

    def finished_one
      @done += 1
      return unless @done >= runnable_methods.size
      @cluster&.destroy
      @cluster = nil
    end
  end

  def cluster
    self.class.cluster
  end

  def teardown
    super
    self.class.finished_one
  end

  # What rx_cluster_notify_ensure does in C, through a Reactis::Client per
  # node: every node, replicas too (a promoted replica keeps notifying).
  def enable_per_node
    cluster.ports.each do |port|
      effective = Reactis.enable_keyspace_events("redis://127.0.0.1:#{port}", "Ex")
      assert_includes effective, "E"
      assert_includes effective, "x"
    end
  end

  def set_px(port, key, ms)
    c = Reactis::Client.new("redis://127.0.0.1:#{port}")
    assert_equal "OK", c.command("SET", key, "v", "PX", ms)
  ensure
    c&.close
  end

  # Reads until every key of want had its expired event, or timeout.
  def drain_expired(sub, want, timeout)
    got = Set.new
    deadline = monotonic + timeout
    while !want.subset?(got) && monotonic < deadline
      m = sub.next_message(timeout: 0.5)
      next if m.nil? || m.gap?
      ev = m.key_event
      got << ev.key if ev && ev.event == "expired"
    end
    got
  end

  def notify_flags(port)
    RawRedis.command(port, "CONFIG", "GET", "notify-keyspace-events")[1]
  end

  def test_enable_keyspace_events_on_cluster_url
    # From nothing, so the call must set every node, replicas included.
    cluster.ports.each { |p| assert_equal "OK", RawRedis.command(p, "CONFIG", "SET", "notify-keyspace-events", "") }
    flags = Reactis.enable_keyspace_events(cluster.url, "Ex")
    assert_includes flags, "E"
    assert_includes flags, "x"
    cluster.ports.each do |port|
      assert_includes notify_flags(port), "E", port
      assert_includes notify_flags(port), "x", port
    end
    # Through a cluster Client too; flags are only ever added.
    c = closing(Reactis::Client.new(cluster.url))
    flags = c.enable_keyspace_events("g")
    assert_empty %w[E x g] - flags.chars
    cluster.ports.each { |port| assert_empty %w[E x g] - notify_flags(port).chars, port }
    assert_raises(Reactis::InvalidArgumentError) { Reactis.enable_keyspace_events(cluster.url, "Q") }
  end

  def test_enable_keyspace_events_on_every_node
    enable_per_node
    cluster.ports.each do |port|
      value = RawRedis.command(port, "CONFIG", "GET", "notify-keyspace-events")[1]
      assert_includes value, "E"
      assert_includes value, "x"
    end
  end

  def test_subscriber_gets_expired_events_of_every_master
    enable_per_node
    masters = cluster.masters
    assert_equal MASTERS, masters.size
    sub = closing(Reactis::Subscriber.new(cluster.url))
    sub.psubscribe("__keyevent@0__:expired")
    # Subscribed on every master before the real keys: one probe key per
    # master per round until every probe's event arrived, bounded.
    deadline = monotonic + 15
    1.step do |round|
      batch = Set.new
      masters.each_key do |port|
        key = cluster.key_on(port, "probe#{round}")
        set_px(port, key, 1)
        batch << key.b
      end
      break if batch.subset?(drain_expired(sub, batch, 2.0))
      flunk("not subscribed on every master") if monotonic > deadline
    end
    keys = Set.new
    masters.each_key do |port|
      3.times do |i|
        key = cluster.key_on(port, "exp#{i}")
        set_px(port, key, 50)
        keys << key.b
      end
    end
    assert_equal 3 * MASTERS, keys.size
    got = drain_expired(sub, keys, 10.0)
    assert keys.subset?(got), "missing: #{(keys - got).to_a.inspect}"
  end

  def test_partitioned_queue_delivers_everything
    # Partition i gets a name whose slot is in the i-th sixth of the slots
    # (queue_cluster.c), so 6 partitions cover every master of 3.
    name = "sms"
    n = 300
    q = closing(Reactis::Queue.new(name, url: cluster.url, partitions: 6))
    res = q.schedule_many(Array.new(n) { |i| { payload: "p#{i}", id: "m#{i}" } })
    assert_equal [:added] * n, res.map(&:outcome)
    st = q.stats
    assert_equal n, st[:scheduled] + st[:ready]
    # The partitions are spread over the masters.
    holders = cluster.masters.keys.reject { |port| RawRedis.command(port, "KEYS", "rx:{#{name}*").empty? }
    assert_equal MASTERS, holders.size
    consumer = closing(Reactis::Queue.new(name, url: cluster.url, partitions: 6))
    seen = {}
    deadline = monotonic + 20
    while seen.size < n && monotonic < deadline
      consumer.fetch(max: 100, timeout: 1).each do |job|
        assert_equal 1, job.attempt
        refute seen.key?(job.id), "delivered twice: #{job.id}"
        seen[job.id] = job.payload
        consumer.ack(job)
      end
    end
    assert_equal(Array.new(n) { |i| ["m#{i}", "p#{i}"] }.to_h, seen)
    st = q.stats
    assert_equal [0, 0, 0, 0], st.values_at(:scheduled, :ready, :in_flight, :dead)
    assert_equal n, st[:acked]
  end

  def test_timers_on_a_cluster_url
    # Timers are a queue underneath: with partitions they spread over the
    # masters and keep every promise (re-touch moves the deadline and replaces
    # the data, a stopped timer never fires, the others fire once each).
    n = 40
    t = closing(Reactis::Timers.new("ctm", url: cluster.url, partitions: 3))
    assert_equal n, t.touch_many(Array.new(n) { |i| ["d#{i}", "v#{i}"] }, ttl: 0.3)
    assert_equal false, t.touch("d0", 1.2, "late") # armed already: moved
    assert_equal true, t.stop("d1")
    assert_equal false, t.stop("d1")
    holders = cluster.masters.keys.reject { |port| RawRedis.command(port, "KEYS", "rx:{timer:ctm*").empty? }
    assert_operator holders.size, :>=, 2
    seen = {}
    deadline = monotonic + 10
    while seen.size < n - 1 && monotonic < deadline
      t.fetch(max: 20, timeout: 0.5).each do |f|
        refute seen.key?(f.id), "fired twice: #{f.id}"
        assert_operator f.fired_ms, :>=, f.deadline_ms - 2
        seen[f.id] = f.data
        t.ack(f)
      end
    end
    expected = (2...n).to_h { |i| ["d#{i}", "v#{i}"] }
    expected["d0"] = "late"
    assert_equal expected, seen
    assert_equal [], t.fetch(max: 5, timeout: 0.3)
  end

  # ------------------------------------------------------------ Client

  def key_in(lo, hi, prefix)
    1_000_000.times do |i|
      key = "#{prefix}:#{i}"
      return key if Reactis.keyslot(key).between?(lo, hi)
    end
    raise "no key for slots #{lo}-#{hi}"
  end

  def node_id(port)
    Cluster.text(RawRedis.command(port, "CLUSTER", "MYID"))
  end

  def wait_owner(slot, port, timeout = 10)
    deadline = monotonic + timeout
    until cluster.live_ports.all? { |p| Cluster.owner(p, slot) == port }
      flunk("slot #{slot} did not move to #{port} everywhere") if monotonic > deadline
      sleep 0.02
    end
  end

  def test_client_routes_every_slot_range_to_its_owner
    masters = cluster.masters
    assert_equal MASTERS, masters.size
    c = closing(Reactis::Client.new(cluster.url))
    assert c.cluster?
    assert c.ping
    st0 = c.stats
    masters.each do |port, owned|
      owned.each do |lo, hi|
        [key_in(lo, hi, "route"), key_in(lo, lo, "edge"), key_in(hi, hi, "edge")].uniq.each do |key|
          # The slot as the server computes it, not as reactis does.
          slot = RawRedis.command(port, "CLUSTER", "KEYSLOT", key)
          assert slot.between?(lo, hi)
          value = "v\x00\xff#{key}".b
          assert_equal "OK", c.command("SET", key, value)
          # On its owner, read behind reactis's back; the others redirect.
          assert_equal value, RawRedis.command(port, "GET", key)
          (masters.keys - [port]).each do |other|
            reply = RawRedis.command(other, "GET", key)
            assert_kind_of RuntimeError, reply
            assert reply.message.start_with?("MOVED #{slot} "), reply.message
          end
          assert_equal value, c.command("GET", key)
        end
      end
    end
    # A binary key with a hash tag lands where its tag says.
    key = "\x00bin{route}\xff".b
    slot = RawRedis.command(cluster.ports.first, "CLUSTER", "KEYSLOT", key)
    assert_equal RawRedis.command(cluster.ports.first, "CLUSTER", "KEYSLOT", "route"), slot
    assert_equal "OK", c.command("SET", key, "b")
    assert_equal "b", RawRedis.command(Cluster.owner(cluster.ports.first, slot), "GET", key)
    assert_equal "b", c.command("EVAL", "return redis.call('GET', KEYS[1])", 1, key)
    assert_equal "OK", c.command("MSET", "{t}a", 1, "{t}b", 2)
    assert_equal %w[1 2], c.command("MGET", "{t}a", "{t}b")
    # Keys of two slots: the server's CROSSSLOT, an ordinary ReplyError.
    ranges = masters.values
    a = key_in(*ranges[0][0], "x")
    b = key_in(*ranges[1][0], "x")
    e = assert_raises(Reactis::ReplyError) { c.command("MGET", a, b) }
    assert_includes e.message, "CROSSSLOT"
    refute_kind_of Reactis::ClusterError, e
    assert_raises(Reactis::WrongTypeError) { c.command("LPUSH", key, "x") }
    assert_equal st0[:moved], c.stats[:moved] # the map was right all along
  end

  def test_keyslot_matches_cluster_keyslot
    rnd = Random.new(7)
    keys = ["", "foo", "123456789", "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
            "foo{{bar}}zap", "foo{bar}{zap}", "{}x", "{", "}{", "{a", "\x00{\xff}\x00".b,
            "\xff\xfe".b, "ключ", "{ключ}.a", "{\x00}", "x" * 1000]
    keys += Array.new(150) { rnd.bytes(rnd.rand(1..40)) }
    keys += Array.new(100) { rnd.bytes(3) + "{" + rnd.bytes(rnd.rand(0..4)) + "}" + rnd.bytes(3) }
    port = cluster.ports.first
    keys.each do |k|
      want = RawRedis.command(port, "CLUSTER", "KEYSLOT", k)
      assert_equal want, Reactis.keyslot(k), k.inspect
      assert_equal want, Reactis::Client.keyslot(k), k.inspect
    end
    assert_equal Reactis.keyslot("user1"), Reactis.keyslot("{user1}.a")
    assert_equal Reactis.keyslot("user1"), Reactis.keyslot(:"{user1}.b")
    # The bytes count, not the encoding.
    assert_equal Reactis.keyslot("ключ".b), Reactis.keyslot("ключ")
    assert_raises(TypeError) { Reactis.keyslot(5) }
  end

  def test_nodes_lists_three_masters_and_three_replicas
    view = cluster.masters
    c = closing(Reactis::Client.new(cluster.url))
    nodes = c.nodes
    masters = c.nodes(:master)
    replicas = c.nodes("replica")
    assert_raises(ArgumentError) { c.nodes(:primary) }
    assert_equal MASTERS, masters.size
    assert_equal MASTERS * REPLICAS, replicas.size
    assert_equal masters + replicas, nodes
    assert_equal cluster.ports.sort, nodes.map(&:port).sort
    firsts = masters.map { |n| n.ranges.first.first }
    assert_equal firsts.sort, firsts
    assert_equal 16_384, masters.sum { |n| n.ranges.sum { |a, b| b - a + 1 } }
    masters.each do |n|
      assert n.master? && !n.failed? && !n.replica?
      assert_equal [:master, "127.0.0.1"], [n.role, n.host]
      assert_equal view[n.port].sort, n.ranges.sort
      assert_equal node_id(n.port), n.id
      assert_equal 40, n.id.size
    end
    replicas.each do |n|
      assert_equal [false, false, :replica, []], [n.master?, n.failed?, n.role, n.ranges]
      info = Cluster.text(RawRedis.command(n.port, "INFO", "replication"))
      assert_includes info, "role:slave"
      assert_includes masters.map(&:port), Integer(info[/master_port:(\d+)/, 1])
    end
    # A node's own URL gives a plain Client, for per-node commands.
    one = closing(Reactis::Client.new(masters.first.url))
    refute one.cluster?
    assert_equal masters.first.id, one.command("CLUSTER", "MYID")
    assert_raises(Reactis::StateError) { one.nodes }
    assert_raises(Reactis::StateError) { one.stats }
  end

  def test_client_api_on_a_cluster_url
    c = Reactis::Client.new(cluster.url, client_name: "rx-cluster", timeout: 10)
    assert_equal "#<Reactis::Client cluster #{cluster.url} (not connected)>", c.inspect
    assert_equal cluster.url, c.url
    refute c.connected?
    c.connect # loads the topology
    assert c.connected?
    assert c.ping
    assert c.inspect.end_with?("(connected)>")
    assert_equal "rx-cluster", c.command("CLIENT", "GETNAME")
    channel = "rb.cluster.#{Process.pid}.#{rand(1 << 30)}"
    sub = closing(Reactis::Subscriber.new(cluster.url))
    sub.subscribe(channel)
    # PUBLISH goes to one master and the cluster forwards it.
    msg = nil
    deadline = monotonic + 10
    while msg.nil? && monotonic < deadline
      assert_kind_of Integer, c.publish(channel, "hi")
      m = sub.next_message(timeout: 0.5)
      msg = m if m && !m.gap?
    end
    refute_nil msg
    assert_equal [channel, "hi"], [msg.channel, msg.data]
    # wakeup from another thread ends a blocking command at once: the GVL
    # is released while it waits (the ubf is rx_cluster_wakeup).
    t0 = monotonic
    th = Thread.new do
      c.command("BLPOP", "{w}nothing", 2)
    rescue Reactis::Interrupted => e
      e
    end
    sleep 0.3
    # A command under way: the state is answered at once, not after it.
    assert c.connected?
    assert c.inspect.end_with?("(connected)>")
    c.wakeup
    assert_kind_of Reactis::Interrupted, th.value
    assert_operator monotonic - t0, :<, 1.5
    assert_equal "OK", c.command("SET", "{w}after", 1) # a new handle, usable
    # Thread#kill stops a blocked command at once too.
    th = Thread.new { c.command("BLPOP", "{w}nothing", 5) }
    sleep 0.3
    t0 = monotonic
    th.kill
    th.join(3)
    refute th.alive?
    assert_operator monotonic - t0, :<, 1.5
    assert c.ping
    c.close
    c.close # idempotent
    assert c.closed?
    assert c.inspect.end_with?("(closed)>")
    assert_raises(Reactis::StateError) { c.command("PING") }
    # The password never shows (nothing is connected here).
    hosts = cluster.ports.first(2).map { |p| "127.0.0.1:#{p}" }.join(",")
    secret = closing(Reactis::Client.new("redis://user:s3cret@#{hosts}?timeout=1"))
    refute_includes secret.inspect, "s3cret"
    assert_equal "redis://user:***@#{hosts}", secret.url
    assert_equal "rediss://:***@a:1,b:2", Reactis.redact_url("rediss://:s3cret@a:1,b:2")
  end

  BAD_URLS = ["redis://a:1,,b:2", "redis://a:1,b:2/3", "redis://a:1,b:2?db=2", "redis://a:1,b:99999",
              "redis://a:1,b:2?bogus=1", "redis://u:s3cret@a:1,b:x", "redis://,a:1",
              "rediss://u:s3cret@a:1,b:2?cluster=maybe"].freeze

  def test_bad_cluster_urls_raise_url_error
    BAD_URLS.each do |url|
      e = assert_raises(Reactis::URLError, url) { Reactis::Client.new(url) }
      refute_includes e.message, "s3cret"
      assert_raises(Reactis::URLError, url) { Reactis.enable_keyspace_events(url, "Ex") }
    end
    assert_raises(Reactis::URLError) { Reactis::Client.new("redis://127.0.0.1:1,127.0.0.1:2", bogus: 1) }
  end

  def test_cluster_yes_on_a_standalone_server_is_a_cluster_error
    s = server
    url = "redis://127.0.0.1:#{s.port}"
    plain = closing(Reactis::Client.new(url))
    refute plain.cluster?
    assert plain.ping
    c = closing(Reactis::Client.new("#{url}?cluster=yes"))
    assert c.cluster?
    t0 = monotonic
    e = assert_raises(Reactis::ClusterError) { c.ping }
    assert_includes e.message, "not a Redis Cluster"
    assert_operator monotonic - t0, :<, 2 # a clear error, not endless retries
    assert_raises(Reactis::ClusterError) { c.nodes }
  end

  def test_moved_after_a_slot_migration_is_followed
    slot = Reactis.keyslot("mig")
    src = Cluster.owner(cluster.ports.first, slot)
    dst = (cluster.masters.keys - [src]).first
    c = closing(Reactis::Client.new(cluster.url))
    assert_equal "OK", c.command("SET", "{mig}one", "v1")
    assert_equal "OK", c.command("SET", "{mig}two", "v2")
    st0 = c.stats
    assert_equal "OK", RawRedis.command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(src))
    assert_equal "OK", RawRedis.command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(dst))
    # Migrating: a key still on the source is served there; a new one is
    # sent to the target with ASKING.
    assert_equal "v1", c.command("GET", "{mig}one")
    assert_equal "OK", c.command("SET", "{mig}new", "v3")
    st = c.stats
    assert_operator st[:ask], :>, st0[:ask]
    assert_equal st0[:moved], st[:moved]
    keys = RawRedis.command(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
    assert_equal ["{mig}one", "{mig}two"], keys.sort
    assert_equal "OK", RawRedis.command(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
    assert_equal "v1", c.command("GET", "{mig}one") # moved mid-way: ASK again
    assert_operator c.stats[:ask], :>=, st0[:ask] + 2
    dst_id = node_id(dst)
    ([dst, src] + (cluster.masters.keys - [src, dst])).each do |port|
      assert_equal "OK", RawRedis.command(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    end
    wait_owner(slot, dst)
    # The source says MOVED now; the client follows and reloads its map.
    assert_equal "v2", c.command("GET", "{mig}two")
    st = c.stats
    assert_operator st[:moved], :>, st0[:moved]
    sleep 0.15 # past the core's refresh rate limit
    assert_equal %w[v1 v2 v3], %w[one two new].map { |k| c.command("GET", "{mig}#{k}") }
    st2 = c.stats
    assert_equal st[:moved], st2[:moved]
    assert_operator st2[:refreshes], :>, st0[:refreshes]
    assert_equal "v1", RawRedis.command(dst, "GET", "{mig}one") # behind reactis's back
    assert_equal [dst], c.nodes(:master).select { |n| n.ranges.any? { |a, b| slot.between?(a, b) } }.map(&:port)
    cluster.wait_ok
  end

  def test_a_killed_master_is_a_typed_error_then_followed_after_failover
    slot = Reactis.keyslot("fo")
    old = Cluster.owner(cluster.ports.first, slot)
    victim = cluster.nodes.find { |n| n.port == old }
    replica = (cluster.ports - [old]).find do |p|
      Cluster.text(RawRedis.command(p, "INFO", "replication")).include?("master_port:#{old}\r")
    end
    refute_nil replica
    c = closing(Reactis::Client.new(cluster.url))
    quick = closing(Reactis::Client.new(cluster.url, timeout: 0.5))
    assert_equal "OK", c.command("SET", "{fo}kept", "v")
    assert_equal "v", quick.command("GET", "{fo}kept")
    # Asynchronous replication: WAIT on the master's own link makes sure the
    # replica has the write before the master dies.
    node = closing(Reactis::Client.new("redis://127.0.0.1:#{old}"))
    assert_equal "OK", node.command("SET", "{fo}kept", "v")
    assert_equal 1, node.command("WAIT", 1, 2000)
    node.close
    begin
      victim.kill # SIGKILL
      # Nothing serves the slot until the replica is promoted: within its
      # 0.5 s the quick client gets a typed connection error.
      t0 = monotonic
      e = assert_raises(Reactis::ConnectionError, Reactis::TimeoutError) { quick.command("GET", "{fo}kept") }
      assert_operator monotonic - t0, :<, 2.0, e.message
      # The replica takes over 0.5 s later, while a command is already
      # retrying: the client refreshes its map and follows (within its 5 s
      # command timeout).
      st0 = c.stats
      takeover = Thread.new do
        sleep 0.5
        RawRedis.command(replica, "CLUSTER", "FAILOVER", "TAKEOVER")
      end
      t0 = monotonic
      assert_equal "OK", c.command("SET", "{fo}after", "w")
      took = monotonic - t0
      assert_equal "OK", takeover.value
      assert_operator took, :>=, 0.4
      assert_operator took, :<, 5.0
      warn format("  a SET issued right after the kill succeeded after %.3f s (promotion at 0.5 s)", took)
      assert_equal "v", c.command("GET", "{fo}kept")
      st = c.stats
      assert_operator st[:refreshes], :>, st0[:refreshes]
      assert_operator st[:retries], :>, st0[:retries]
      assert_equal [replica], c.nodes(:master).select { |n| n.ranges.any? { |a, b| slot.between?(a, b) } }.map(&:port)
      assert_equal "w", RawRedis.command(replica, "GET", "{fo}after")
    ensure
      victim.start(port: old) unless victim.running? # rejoins as the new master's replica
    end
    cluster.wait_ok
  end
end
