# frozen_string_literal: true

require_relative "helper"

class TestPubSub < ReactisTest
  def setup
    super
    @redis = server
    @client = closing(Reactis::Client.new(@redis.url))
  end

  def subscriber(**opts)
    closing(Reactis::Subscriber.new(@redis.url, **opts))
  end

  def test_round_trip
    sub = subscriber
    sub.subscribe("chat:room-1")
    assert_equal 1, sub.subscription_count
    assert_equal 1, @client.publish("chat:room-1", "hello")
    msg = sub.next_message(timeout: 5)
    refute_nil msg
    assert_equal :message, msg.kind
    assert_equal "chat:room-1", msg.channel
    assert_equal "hello", msg.data
    assert_equal Encoding::BINARY, msg.data.encoding
    assert_equal Encoding::BINARY, msg.channel.encoding
    assert_nil msg.pattern
    refute msg.gap?
    assert_nil sub.next_message(timeout: 0)
  end

  def test_patterns
    sub = subscriber
    sub.psubscribe("news.*", "sport.?")
    @client.publish("news.tech", "a")
    @client.publish("sport.x", "b")
    @client.publish("weather", "ignored")
    got = sub.each_message(timeout: 1).first(2)
    assert_equal [%w[news.* news.tech a], %w[sport.? sport.x b]],
                 got.map { |m| [m.pattern, m.channel, m.data] }
    assert(got.all? { |m| m.kind == :pmessage })
    assert_nil sub.next_message(timeout: 0.2)
  end

  def test_binary_strings
    sub = subscriber
    channel = "bin\x00\xFF:chan".b
    payload = "\x00\xFF\xFEpayload\x00".b
    sub.subscribe(channel)
    @client.publish(channel, payload)
    msg = sub.next_message(timeout: 5)
    assert_equal channel, msg.channel
    assert_equal payload, msg.data
    assert_equal Encoding::BINARY, msg.data.encoding
    assert_equal 11, msg.data.bytesize
    # A UTF-8 String goes out as its bytes.
    @client.publish(channel, "é")
    assert_equal "é".b, sub.next_message(timeout: 5).data
    # Replies too: bulk strings are binary.
    @client.command("SET", "k\x00".b, payload)
    value = @client.command("GET", "k\x00".b)
    assert_equal payload, value
    assert_equal Encoding::BINARY, value.encoding
    assert_equal "OK", @client.command("SET", "n", 42)
    assert_equal 43, @client.command("INCR", :n)
  end

  # A backlog is drained in batches built in C: order, kinds, frozen binary
  # Strings, the few instance variables a message keeps; leaving the loop
  # early keeps the rest of the batch for the next read.
  def test_drain_backlog_in_batches
    sub = subscriber(batch_size: 64)
    sub.subscribe("plain")
    sub.psubscribe("pat.*")
    n = 1000
    pipe = (0...n).flat_map do |i|
      i.even? ? [["PUBLISH", "plain", "m#{i}\x00\xFF"]] : [["PUBLISH", "pat.#{i % 3}", "m#{i}\x00\xFF"]]
    end
    pipe.each { |args| @client.command(*args) }
    first = sub.each_message(timeout: 2).first(10)
    assert_equal (0...10).map { |i| "m#{i}\x00\xFF".b }, first.map(&:data)
    rest = []
    sub.each_message(timeout: 0.5) { |m| rest << m }
    all = first + rest
    assert_equal n, all.size
    all.each_with_index do |m, i|
      assert_equal "m#{i}\x00\xFF".b, m.data
      assert m.data.frozen? && m.channel.frozen?
      assert_equal Encoding::BINARY, m.data.encoding
      if i.even?
        assert_equal :message, m.kind
        assert_equal "plain", m.channel
        assert_nil m.pattern
        assert_equal %i[@channel @data], m.instance_variables.sort
      else
        assert_equal :pmessage, m.kind
        assert_equal "pat.#{i % 3}", m.channel
        assert_equal "pat.*", m.pattern
        assert m.pattern.frozen?
      end
      refute m.gap?
      assert_equal 0, m.gap_start_ms
      assert_nil m.key_event
    end
    assert_equal Reactis::Message.new(:message, "plain".b, "m0\x00\xFF".b), all[0]
    assert_equal Reactis::Message.new(:pmessage, "pat.1".b, "m1\x00\xFF".b, pattern: "pat.*".b), all[1]
    assert_nil sub.next_message(timeout: 0)
  end

  # The batch is read by an index; a block that reads too (next_message
  # inside each_message, or inside a block-form handler) must still see
  # every message once and in order. Consecutive messages of one channel
  # share one frozen channel String.
  def test_reading_inside_a_loop_keeps_order
    sub = subscriber(batch_size: 16)
    sub.subscribe("r")
    n = 200
    n.times { |i| @client.publish("r", i.to_s) }
    seen = []
    msgs = []
    sub.each_message(timeout: 2) do |m|
      msgs << m
      seen << m.data.to_i
      if seen.size.odd?
        nxt = sub.next_message(timeout: 2)
        msgs << nxt
        seen << nxt.data.to_i
      end
      break if seen.size >= 60
    end
    assert_equal (0...60).to_a, seen
    assert_equal 1, msgs.map { |m| m.channel.object_id }.uniq.size
    assert msgs.first.channel.frozen?
    sub.subscribe("r") do |on|
      on.message do |channel, data|
        assert_equal "r", channel
        seen << data.to_i
        if (seen.size % 7).zero?
          nxt = sub.next_message(timeout: 2)
          seen << nxt.data.to_i
        end
        sub.unsubscribe if seen.size >= n
      end
    end
    assert_equal (0...n).to_a, seen.first(n)
    assert_equal n, seen.size
  end

  # The same with batches big enough to be lent (Subscriber#lend: the loop
  # holds them, not the Subscriber) and small ones kept in @buf, and with
  # loops inside loops: an inner loop that stops inside the outer loop's
  # batch, one that reads on into batches of its own, a break, then
  # next_message for the rest.
  def test_nested_reads_keep_order_in_lent_batches
    [16, 64, 512].each do |batch|
      sub = subscriber(batch_size: batch)
      ch = "n#{batch}"
      sub.subscribe(ch)
      n = 300
      n.times { |i| @client.publish(ch, i.to_s) }
      seen = []
      sub.each_message(timeout: 2) do |m|
        seen << m.data.to_i
        if seen.size == 10
          sub.each_message(timeout: 2) do |x|
            seen << x.data.to_i
            break if seen.size >= 15
          end
        elsif seen.size == 50
          sub.each_message(timeout: 2) do |x|
            seen << x.data.to_i
            seen << sub.next_message(timeout: 2).data.to_i if seen.size == 100
            break if seen.size >= 141
          end
        end
        break if seen.size >= 200
      end
      while (m = sub.next_message(timeout: 0.5))
        seen << m.data.to_i
      end
      assert_equal (0...n).to_a, seen, "batch_size #{batch}"
    end
  end

  # An Enumerator stepped with #next and dropped half-way loses nothing:
  # it reads through the Subscriber's own buffer, which the next loop
  # continues from.
  def test_enumerator_next_then_a_loop
    sub = subscriber
    sub.subscribe("x")
    100.times { |i| @client.publish("x", i.to_s) }
    enum = sub.each_message(timeout: 1)
    seen = 3.times.map { enum.next.data.to_i }
    enum = nil
    GC.start
    sub.each_message(timeout: 0.5) { |m| seen << m.data.to_i }
    assert_equal (0...100).to_a, seen
  end

  # A loop's batch is held on the loop's stack, not by the Subscriber (an
  # old object by then): a GC inside the block leaves the Messages still
  # waiting in the batch young. Held by the Subscriber, each would be
  # promoted to the old generation at once (an object an old one points to
  # is made old) and freed only by a major GC.
  def test_a_gc_inside_the_loop_leaves_the_batch_young
    require "objspace"
    sub = subscriber
    sub.subscribe("y")
    100.times { |i| @client.publish("y", i.to_s) }
    4.times { GC.start }
    later = nil
    sub.each_message(timeout: 2) do |_m|
      GC.start(full_mark: false, immediate_sweep: true)
      later = sub.next_message # it was in the batch during that GC
      break
    end
    assert_equal "1", later.data
    refute_includes ObjectSpace.dump(later), '"old":true'
    # The block form's loop too.
    100.times { |i| @client.publish("y", i.to_s) }
    later = nil
    sub.subscribe("y") do |on|
      on.message do |_ch, data|
        if data == "0"
          GC.start(full_mark: false, immediate_sweep: true)
          later = sub.next_message
          sub.unsubscribe
        end
      end
    end
    refute_nil later
    refute_includes ObjectSpace.dump(later), '"old":true'
  end

  def test_drain_with_encoding
    sub = subscriber(encoding: "UTF-8")
    sub.psubscribe("caf\u00e9.*")
    @client.publish("caf\u00e9.1", "\u00e9t\u00e9")
    msg = sub.next_message(timeout: 5)
    assert_equal "\u00e9t\u00e9", msg.data
    assert_equal Encoding::UTF_8, msg.data.encoding
    assert_equal Encoding::UTF_8, msg.channel.encoding
    assert_equal Encoding::UTF_8, msg.pattern.encoding
    assert msg.data.frozen?
  end

  def test_waiting_without_subscriptions_raises
    sub = subscriber
    assert_raises(Reactis::StateError) { sub.next_message(timeout: 1) }
    sub.subscribe("a")
    sub.unsubscribe("a")
    assert_raises(Reactis::StateError) { sub.each_message(timeout: 1) { flunk } }
  end

  def test_encoding_on_request
    sub = subscriber(encoding: "UTF-8")
    sub.subscribe("utf")
    @client.publish("utf", "héllo")
    msg = sub.next_message(timeout: 5)
    assert_equal Encoding::UTF_8, msg.data.encoding
    assert_equal "héllo", msg.data
    c = closing(Reactis::Client.new(@redis.url, encoding: Encoding::UTF_8))
    c.command("SET", "u", "ü")
    assert_equal "ü", c.command("GET", "u")
  end

  def test_block_form_like_redis_rb
    sub = subscriber
    got = []
    subscribed = []
    publisher = nil
    sub.psubscribe("__keyevent@*__:expired", "room:*") do |on|
      on.psubscribe { |pattern, count| subscribed << [pattern, count] }
      on.pmessage do |pattern, channel, message|
        got << [pattern, channel, message]
        sub.punsubscribe if got.size == 2
      end
      on.message { |_c, _m| flunk("no plain subscriptions here") }
      publisher = Thread.new do
        sleep 0.05
        @client.publish("room:1", "one")
        @client.publish("room:2", "two")
      end
    end
    publisher.join
    assert_equal [["__keyevent@*__:expired", 1], ["room:*", 2]], subscribed
    assert_equal [%w[room:* room:1 one], %w[room:* room:2 two]], got
    assert_equal 0, sub.subscription_count
  end

  def test_block_form_ends_on_stop
    sub = subscriber
    Thread.new do
      sleep 0.1
      @client.publish("c", "x")
      sleep 0.1
      sub.stop
    end
    seen = []
    sub.subscribe("c") { |on| on.message { |ch, m| seen << [ch, m] } }
    assert_equal [%w[c x]], seen
  end

  def test_each_message_is_enumerable
    sub = subscriber
    sub.subscribe("e")
    enum = sub.each_message(timeout: 1)
    assert_kind_of Enumerator, enum
    3.times { |i| @client.publish("e", i.to_s) }
    assert_equal %w[0 1 2], enum.take(3).map(&:data)
    assert_kind_of Enumerable, sub
    @client.publish("e", "last")
    assert_equal "last", sub.first.data
  end

  def test_wakeup_ends_each_message
    sub = subscriber
    sub.subscribe("w")
    t0 = monotonic
    Thread.new { sleep 0.2; sub.wakeup }
    count = 0
    sub.each_message { count += 1 }
    assert_equal 0, count
    assert_in_delta 0.2, monotonic - t0, 0.3
  end

  def test_close_from_another_thread
    sub = subscriber
    sub.subscribe("x")
    reader = Thread.new { sub.each_message.to_a }
    sleep 0.1
    sub.close
    assert_equal [], reader.value
    assert sub.closed?
    assert_raises(Reactis::StateError) { sub.next_message }
    sub.close # idempotent
  end

  def test_unsubscribe
    sub = subscriber
    sub.subscribe("a", "b")
    assert_equal 2, sub.subscription_count
    sub.unsubscribe("a")
    assert_equal 1, sub.subscription_count
    @client.publish("a", "gone")
    @client.publish("b", "kept")
    assert_equal "kept", sub.next_message(timeout: 5).data
    sub.unsubscribe
    assert_equal 0, sub.subscription_count
  end

  def test_other_thread_progresses_while_one_blocks
    sub = subscriber
    sub.subscribe("quiet")
    count = lambda do
      ticks = 0
      t0 = monotonic
      ticks += 1 while monotonic - t0 < 0.5
      ticks
    end
    alone = count.call
    reader = Thread.new { sub.next_message(timeout: 1.5) }
    sleep 0.05
    ticks = count.call
    # A thread holding the GVL while blocked would have let us count
    # (almost) nothing. Relative to counting alone, not a fixed number: under
    # valgrind on a busy machine 100,000 ticks in 0.5 s was not always there.
    assert_operator ticks, :>, alone / 4
    # Counted while the reader waited, not after its wait.
    assert reader.alive?
    # And a second connection works meanwhile.
    assert @client.ping
    assert_nil reader.value
  end

  def test_inspect_hides_password
    r = server(password: "s3cr3t-pw")
    c = closing(Reactis::Client.new(r.url))
    s = closing(Reactis::Subscriber.new(r.url))
    refute_includes c.inspect, "s3cr3t-pw"
    refute_includes s.inspect, "s3cr3t-pw"
    assert_includes c.inspect, "***"
    assert_includes s.url, "***"
    assert c.ping
  end
end
