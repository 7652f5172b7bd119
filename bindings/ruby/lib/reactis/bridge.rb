# frozen_string_literal: true

module Reactis
  # From `expired` notifications of templated keys to their shadow data, for
  # keys that other applications set with TTLs. Writers keep the data in a
  # shadow key without a TTL ("shadow:session:{id}"); when "session:{id}"
  # expires the bridge reads and deletes the shadow in one GETDEL:
  #
  #   bridge = Reactis::ExpiryBridge.new("session:{id}", url: url)
  #   bridge.each { |exp| puts "session #{exp.captures[:id]} ended: #{exp.value}" }
  #
  # This path inherits Redis's notifications: at most once (a subscriber
  # that is down or reconnecting misses events), and late (`expired` fires
  # when Redis deletes the key, which with many keys carrying TTLs can be
  # tens of seconds after the TTL). Use Reactis::Timers where the event
  # matters: they fire on time and at least once. See docs/timers.md.
  class ExpiryBridge
    # key: the key that expired; captures: Symbol => binary String; value:
    # the shadow key's value, nil when it had none (never set, or another
    # bridge took it first).
    Expiry = Struct.new(:key, :captures, :value)

    attr_reader :template, :shadow

    def initialize(template, shadow: nil, url: nil, delete: true, db: nil, enable_events: true,
                   **options)
      @handle = Cimpl::Bridge.new(Internal.bytes(template, "template"),
                                  shadow.nil? ? nil : Internal.bytes(shadow, "shadow"),
                                  delete ? 0 : Cimpl::BRIDGE_KEEP)
      @template = Template.new(@handle.key_template)
      @shadow = Template.new(@handle.shadow_template)
      @url = Internal.check_url(url || ENV.fetch("REDIS_URL", "redis://localhost:6379"))
      @db = db
      @enable = enable_events
      @options = options
      @client = nil
      @sub = nil
    end

    # Subscribes sub to the expired events of db (default: the bridge's
    # database; -1: every database).
    def subscribe(sub, db: nil)
      db ||= @db || url_db
      sub.__send__(:with_handle) { |h| @handle.subscribe(h, db) }
      self
    end

    # The Expiry of a Message from any Subscriber, or nil when it is not an
    # expired event of the template. Reads (and deletes) the shadow key.
    def take(msg)
      return nil if msg.gap? || msg.channel.nil?
      rc = key = caps = value = nil
      Timers::RETRIES.times do
        rc, key, caps, value = client.__send__(:locked) do |h|
          @handle.take(h, msg.channel, msg.data || "", [@template.names.size, 1].max)
        end
        break unless rc == Cimpl::EINTR # not run: an interrupt was pending
      end
      return nil if rc == Cimpl::NOMATCH
      raise Internal.interrupted(rc, "expiry bridge") unless rc == Cimpl::OK
      Expiry.new(key, @template.names.zip(caps).to_h, value)
    end

    # Subscribes (enabling the events first) and yields every expired key
    # of the template; returns after timeout seconds without an event, or
    # on #close. Without a block, an Enumerator.
    def each(timeout: nil)
      return enum_for(:each, timeout: timeout) unless block_given?
      unless @sub
        client.enable_keyspace_events("Ex") if @enable
        @sub = Subscriber.new(@url, **@options)
        subscribe(@sub)
      end
      @sub.each_message(timeout: timeout) do |msg|
        exp = take(msg)
        yield exp if exp
      end
      self
    end
    alias listen each

    def close
      @sub&.close
      @sub = nil
      @client&.close
      @client = nil
      nil
    end

    def inspect
      "#<Reactis::ExpiryBridge #{@template} -> #{@shadow}>"
    end

    private

    def client
      @client ||= Client.new(@url, **(@db.nil? ? @options : @options.merge(db: @db)))
    end

    def url_db
      u = URI.parse(@url)
      q = URI.decode_www_form(u.query || "").to_h
      return Integer(q["db"]) if q["db"]
      path = u.path.to_s.delete("/")
      u.scheme != "unix" && path.match?(/\A\d+\z/) ? Integer(path) : 0
    rescue URI::Error, ArgumentError
      0
    end
  end
end
